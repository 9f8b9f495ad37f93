// The API reference: the bundled Swagger UI renders /openapi.json (no request leaves this site).
(function () {
  "use strict";
  var el = document.getElementById("swagger-ui");
  if (el && window.SwaggerUIBundle) {
    window.SwaggerUIBundle({ url: el.getAttribute("data-spec"), dom_id: "#swagger-ui", validatorUrl: null,
                             deepLinking: false, tryItOutEnabled: false });
  }
})();
