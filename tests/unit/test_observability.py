"""What the monitoring stack relies on stays put: the exported metric names and labels (a golden list), the
Grafana dashboards (JSON loads, every panel's query names an exported metric), Prometheus' scrape file and the
`monitoring` profile of docker-compose.yml (validated offline, as tests/unit/test_deployment_files.py does)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

#: the gateway's metrics: name → (type, label names). Changing one breaks dashboards and alerts: do it on purpose.
GATEWAY_GOLDEN = {
    "payrisk_deliveries": ("counter", ("provider", "outcome")),
    "payrisk_unverified_deliveries": ("counter", ("tenant", "provider", "reason")),
    "payrisk_dispatch_errors": ("counter", ()),
    "payrisk_dependency_up": ("gauge", ("dependency",)),
    "payrisk_http_request_duration_seconds": ("histogram", ("method", "route", "status")),
    "payrisk_http_requests": ("counter", ("method", "route", "status")),
    "payrisk_open_cases": ("gauge", ("tenant",)),
    "payrisk_active_customers": ("gauge", ("tenant",)),
    "payrisk_revenue_at_risk": ("gauge", ("tenant", "currency")),
    "payrisk_recovered_revenue": ("gauge", ("tenant", "currency")),
    "payrisk_cases": ("gauge", ("tenant", "outcome")),
    "payrisk_delivery_backlog": ("gauge", ("status",)),
    "payrisk_delivery_backlog_oldest_seconds": ("gauge", ()),
    "payrisk_timers_due": ("gauge", ()),
    "payrisk_timer_lag_seconds": ("gauge", ()),
    "payrisk_outbox_depth": ("gauge", ("topic",)),
    "payrisk_outbox_dead": ("gauge", ()),
    "payrisk_gauges_refreshed_timestamp_seconds": ("gauge", ()),
    "payrisk_gauge_refresh_errors": ("counter", ()),
}
#: the actors' Ray metrics (exported with a `ray_` prefix): name → (type, tag keys). Never a customer id.
RAY_GOLDEN = {
    "payrisk_deliveries_applied": ("Counter", ("provider",)),
    "payrisk_failures": ("Counter", ("provider", "category")),
    "payrisk_retries": ("Counter", ("outcome",)),
    "payrisk_recovered_amount": ("Counter", ("currency",)),
    "payrisk_shard_active_customers": ("Gauge", ("shard",)),
    "payrisk_shard_open_cases": ("Gauge", ("shard",)),
    "payrisk_timer_lag_seconds": ("Histogram", ()),
    "payrisk_webhook_to_checkpoint_seconds": ("Histogram", ()),
    "payrisk_timers_fired": ("Counter", ()),
    "payrisk_loop_failures": ("Counter", ("actor", "error")),
    "payrisk_alerts_no_channel": ("Counter", ("kind",)),
}
#: Ray's own metrics the actors dashboard reads
RAY_SYSTEM = {"ray_actors", "ray_tasks", "ray_component_rss_bytes"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def gateway_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    import gateway.app  # noqa: F401 - registers every gateway metric

    found = {}
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the registry lists no collectors
        if isinstance(collector, MetricWrapperBase) and collector._name.startswith("payrisk_"):
            found[collector._name] = (collector._type, tuple(collector._labelnames))
    return found


def ray_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every Counter / Gauge / Histogram declared in actors/metrics.py, read from the source."""
    found = {}
    for node in ast.walk(ast.parse((ROOT / "actors" / "metrics.py").read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "Counter", "Gauge", "Histogram"):
            name = node.args[0]
            assert isinstance(name, ast.Constant)
            tags = next((kw.value for kw in node.keywords if kw.arg == "tag_keys"), None)
            labels = tuple(e.value for e in tags.elts) if isinstance(tags, ast.Tuple) else ()  # type: ignore[misc]
            found[str(name.value)] = (node.func.id, labels)
    return found


def exported_names() -> set[str]:
    names = set(RAY_SYSTEM)
    for name, (kind, _) in gateway_metrics().items():
        names.update(name + suffix for suffix in SUFFIXES[kind])
    for name, (kind, _) in ray_metrics().items():
        names.update(f"ray_{name}{suffix}" for suffix in SUFFIXES[kind.lower()])
    return names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "le", "inf", "nan"}


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords, labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()[:1]
        word = match.group(0)
        if following != "(" and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panel_exprs(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel.get("targets", [])]


def test_the_gateway_exports_the_golden_metrics_with_their_labels() -> None:
    assert gateway_metrics() == GATEWAY_GOLDEN


def test_the_actors_export_the_golden_ray_metrics_with_their_tags() -> None:
    metrics = ray_metrics()
    assert metrics == RAY_GOLDEN
    assert not [name for name, (_, tags) in metrics.items() if {"customer", "customer_id", "invoice"} & set(tags)]


def test_the_gateway_metrics_are_served_with_those_names() -> None:
    from prometheus_client import generate_latest

    from gateway.gauges import BACKLOG

    BACKLOG.labels("received").set(0)
    text = generate_latest(REGISTRY).decode()
    for name in ("payrisk_http_request_duration_seconds", "payrisk_delivery_backlog", "payrisk_timer_lag_seconds"):
        assert f"# TYPE {name} " in text


def test_three_dashboards_load_with_panels() -> None:
    boards = dashboards()
    assert set(boards) == {"recovery", "pipeline", "actors"}
    for name, board in boards.items():
        assert board["uid"] == f"payrisk-{name}" and board["panels"], name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name


@pytest.mark.parametrize("name", ["recovery", "pipeline", "actors"])
def test_every_panel_query_names_an_exported_metric(name: str) -> None:
    exported = exported_names()
    exprs = panel_exprs(dashboards()[name])
    assert exprs
    for title, expr in exprs:
        used = metric_names_in(expr)
        assert used, f"{title}: {expr} reads no metric"
        assert used <= exported, f"{title}: {sorted(used - exported)} not exported"


def test_the_query_check_catches_a_misspelt_metric() -> None:
    assert metric_names_in('sum by (currency) (rate(payrisk_revenue_at_rsik{tenant="a"}[5m]))') == {
        "payrisk_revenue_at_rsik"}
    assert not metric_names_in("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))") - {"x_bucket"}
    assert "payrisk_revenue_at_rsik" not in exported_names()


def test_the_dashboards_cover_what_on_call_watches() -> None:
    exprs = {name: " ".join(expr for _, expr in panel_exprs(board)) for name, board in dashboards().items()}
    assert {"payrisk_revenue_at_risk", "payrisk_recovered_revenue", "payrisk_cases"} <= metric_names_in(
        exprs["recovery"])
    assert {"payrisk_http_request_duration_seconds_bucket", "payrisk_deliveries_total", "payrisk_delivery_backlog",
            "payrisk_timer_lag_seconds", "payrisk_outbox_depth"} <= metric_names_in(exprs["pipeline"])
    assert 'State="RESTARTING"' in exprs["actors"] and "ray_payrisk_loop_failures_total" in exprs["actors"]


def test_the_dashboards_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    for name, board in dashboards().items():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids, (name, panel["title"])


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_prometheus_scrapes_the_gateway_with_a_key_and_ray_through_its_discovery_file(compose: dict[str, Any]
                                                                                    ) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    gateway = jobs["payrisk-gateway"]
    assert gateway["metrics_path"] == "/metrics" and gateway["static_configs"][0]["targets"] == ["gateway:8000"]
    key_file = gateway["authorization"]["credentials_file"]
    prometheus = compose["services"]["prometheus"]
    assert key_file == f"/run/secrets/{prometheus['secrets'][0]}"
    assert compose["secrets"][prometheus["secrets"][0]] == {"environment": "PAYRISK_METRICS_KEY"}
    discovery = jobs["ray"]["file_sd_configs"][0]["files"][0]
    assert discovery == "/tmp/ray/prom_metrics_service_discovery.json"
    # the file lives in the Ray head's temp dir, a volume Prometheus mounts at the same place
    head_volume = next(v.split(":")[0] for v in compose["services"]["ray-head"]["volumes"] if ":/tmp/ray" in v)
    assert f"{head_volume}:/tmp/ray:ro" in prometheus["volumes"]


def test_monitoring_runs_only_under_its_profile_with_the_files_mounted(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "payrisk.yml").read_text())["providers"][0]
    assert grafana_mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert grafana_mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    head = services["ray-head"]["environment"]
    assert head["RAY_PROMETHEUS_HOST"] == "http://prometheus:9090" and head["RAY_GRAFANA_HOST"] == "http://grafana:3000"
    assert {"127.0.0.1:9090:9090", "127.0.0.1:3000:3000"} <= {p for n in ("prometheus", "grafana")
                                                             for p in services[n]["ports"]}
