"""Starting or joining Ray, always bound to loopback for a local cluster."""

from __future__ import annotations

import os
import tempfile
from typing import Any

NAMESPACE = "payrisk"


def start_ray(address: str | None, *, dashboard_port: int = 8265, include_dashboard: bool = True,
              num_cpus: int | None = None) -> dict[str, Any]:
    """Join `address`, or start a local Ray on 127.0.0.1 with its own temp dir. Returns ray.init's context."""
    import ray

    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address}
    if address:
        ctx = ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
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
        )
    return {"address": ctx.address_info.get("gcs_address"), "dashboard_url": ctx.dashboard_url}


def ray_alive() -> bool:
    import ray

    if not ray.is_initialized():
        return False
    try:
        return bool(ray.nodes())
    except Exception:  # noqa: BLE001 - any GCS failure means "not ready"
        return False
