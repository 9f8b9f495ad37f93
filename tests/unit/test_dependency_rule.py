"""The dependency rule: the pure core (actors/domain, strategies) imports nothing from Ray, psycopg, Redis,
Starlette or the adapters around it; the gateway reaches Ray only through gateway/dispatch.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_layers import imports

ROOT = Path(__file__).resolve().parents[2]
PURE = [*sorted((ROOT / "actors" / "domain").rglob("*.py")), *sorted((ROOT / "strategies").rglob("*.py"))]
FORBIDDEN = ("ray", "psycopg", "psycopg_pool", "redis", "starlette", "uvicorn", "httpx", "aiosmtplib", "stripe",
             "gateway", "payrisk", "simulator", "store", "actors.shard", "actors.scheduler", "actors.executor",
             "actors.persist", "actors.system", "actors.notifier", "actors.monitor", "actors.outbox_worker",
             "actors.classifier", "actors.planning", "actors.clock", "actors.metrics")


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pure_core_imports_no_infrastructure(path: Path) -> None:
    bad = sorted(n for n in imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


def test_the_gateway_reaches_ray_only_through_its_dispatch_module() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "gateway").rglob("*.py"))
                 if p.name != "dispatch.py" and any(n == "ray" or n.startswith("ray.") for n in imports(p))]
    assert offenders == []


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from psycopg import sql\nimport ray.util\n")
    assert {"psycopg", "ray.util"} <= imports(sneaky)
