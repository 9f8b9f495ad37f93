// Progressive enhancement only: every page works without it. Draws the overview's daily charts (uPlot, bundled)
// from the JSON the page carries, and asks before a destructive operator action.
(function () {
  "use strict";
  var data = document.getElementById("chart-data");
  if (data && window.uPlot) {
    var series = JSON.parse(data.textContent);
    Object.keys(series).forEach(function (currency) {
      var el = document.getElementById("chart-" + currency);
      if (!el) { return; }
      var s = series[currency];
      var width = Math.max(320, Math.min(1200, el.clientWidth || 800));
      new window.uPlot({
        width: width, height: 260,
        series: [{}, { label: "failed", stroke: "#a40e0e", width: 2 }, { label: "recovered", stroke: "#0f5f2a", width: 2 }],
        axes: [{}, { label: currency.toUpperCase() }]
      }, [s.x, s.failed, s.recovered], el);
    });
  }
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
})();
