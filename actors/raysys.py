"""Starting or joining Ray, always bound to loopback for a local cluster."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from actors.placement import NAMESPACE


def job_config(name: str) -> Any:
    """A driver's job config carrying its name: the Ray dashboard's Jobs view shows it."""
    from ray.job_config import JobConfig

    return JobConfig(metadata={"job_name": name})


def start_ray(address: str | None, *, dashboard_port: int = 8265, include_dashboard: bool = True,
              num_cpus: int | None = None, job_name: str = "payrisk", worker_niceness: int = 0) -> dict[str, Any]:
    """Join `address`, or start a local Ray with its own temp dir. Returns ray.init's context.

    A local Ray's node address, dashboard and metrics agent are on 127.0.0.1. Ray 2.x's gRPC servers (GCS, raylet,
    workers) bind every interface whatever the node address — Ray has no setting for that — so they rely on Ray's
    token authentication (on by default): the token file and Ray's temp dir are made private to this user here
    (Ray leaves them 0644 / 0777). `exposed_ports()` lists what still listens beyond loopback; on a shared host,
    firewall those ports (docs/DEPLOYMENT.md)."""
    import ray

    from settings.logging import route_library_loggers

    route_library_loggers()  # importing ray gave its logger a plain-text handler: back to the one stream
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address}
    if address:
        ctx = ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, job_config=job_config(job_name))
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ctx = ray.init(
            namespace=NAMESPACE,
            num_cpus=num_cpus or os.cpu_count() or 2,
            include_dashboard=include_dashboard,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            _node_ip_address="127.0.0.1",
            _temp_dir=tempfile.mkdtemp(prefix="payrisk-ray-"),
            log_to_driver=False,
            job_config=job_config(job_name),
            # Ray starts its workers at nice 15; the shards, scheduler and outbox are the platform's critical
            # path and share the cores with the gateway and PostgreSQL (nice 0): at 15 they only got what those
            # left and fell behind under load (PAYRISK_RAY_WORKER_NICENESS, docs/BENCHMARKS.md). A cluster started
            # with `ray start` takes RAY_worker_niceness from its environment (ray_cluster.yaml, DEPLOYMENT.md).
            _system_config={"worker_niceness": worker_niceness},
        )
        make_private()
    node = ray._private.worker._global_node
    return {"address": ctx.address_info.get("gcs_address"), "dashboard_url": ctx.dashboard_url,
            "metrics_export_port": ctx.address_info.get("metrics_export_port"),
            "session_dir": node.get_session_dir_path() if node is not None else None}


def join_ray(address: str) -> None:
    """A uvicorn worker process is a Ray driver of the platform's cluster (never a new cluster)."""
    import ray

    if ray.is_initialized():
        return
    if address.startswith(("127.0.0.1:", "localhost:")):
        # ray.init(address=...) rewrites a loopback address to the machine's interface address, but a local
        # platform's Ray listens on loopback only: keep the address as given.
        import ray._private.services as services

        services.resolve_ip_for_localhost = lambda host: host
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, job_config=job_config("payrisk-gateway"))


def ray_alive() -> bool:
    import ray

    if not ray.is_initialized():
        return False
    try:
        return bool(ray.nodes())
    except Exception:  # noqa: BLE001 - any GCS failure means "not ready"
        return False


def make_private() -> None:
    """Ray's auth token file 0600 and this Ray's temp dir (sockets, logs, session files) 0700."""
    import ray

    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if token.is_file():
        token.chmod(0o600)
    node = ray._private.worker._global_node
    if node is not None:
        session = Path(node.get_session_dir_path())
        for directory in (session.parent, session):
            directory.chmod(0o700)


def exposed_ports() -> list[str]:
    """`address:port` of sockets this machine's Ray processes of this session listen on beyond loopback."""
    import psutil
    import ray

    node = ray._private.worker._global_node
    session = node.get_session_dir_path() if node is not None else None
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or conn.laddr.ip in ("127.0.0.1", "::1") or conn.pid is None:
            continue
        try:
            cmdline = " ".join(psutil.Process(conn.pid).cmdline())
        except psutil.Error:
            continue
        if session and Path(session).name in cmdline or session and str(Path(session).parent) in cmdline:
            found.append(f"{conn.laddr.ip}:{conn.laddr.port}")
    return sorted(found)


def token_path() -> Path:
    """Where Ray's token for this user is (the dashboard asks for it; `RAY_AUTH_TOKEN_PATH` overrides)."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def banner_lines(info: dict[str, Any], grafana_host: str | None = None, prometheus_host: str | None = None
                 ) -> list[str]:
    """What `payrisk up` prints about Ray: the dashboard with where its token is, the metrics export and its
    discovery file for Prometheus, where Grafana / Prometheus are, and every port Ray opened beyond loopback."""
    dashboard = info.get("dashboard_url")
    lines = [f"Ray dashboard     http://{dashboard}  (sign in with the token in {token_path()})" if dashboard
             else "Ray dashboard     off"]
    if info.get("metrics_export_port"):
        lines.append(f"Ray metrics       http://127.0.0.1:{info['metrics_export_port']}/metrics")
    if info.get("session_dir"):
        discovery = Path(str(info["session_dir"])).parent / "prom_metrics_service_discovery.json"
        lines.append(f"Prometheus file   {discovery}  (file_sd target list of every Ray node; deploy/prometheus.yml)")
    if grafana_host or prometheus_host:
        lines.append(f"Grafana           {grafana_host or '-'}   Prometheus {prometheus_host or '-'}  "
                     "(the Ray dashboard's Metrics tab shows them)")
    try:
        exposed = exposed_ports() if info.get("session_dir") else []
    except Exception:  # noqa: BLE001 - listing sockets may be refused (containers); the banner goes on
        exposed = []
    if exposed:
        lines.append(f"Ray ports open    {', '.join(exposed)}  (beyond loopback: firewall them, docs/DEPLOYMENT.md)")
    return lines
