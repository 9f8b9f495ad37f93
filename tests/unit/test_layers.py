"""The layout is the architecture: each top-level package is one layer and imports go one way —
the shell (`payrisk/`) → the edge and the actors (`gateway/`, `actors/`) → the pure core (`actors/domain/`,
`strategies/`) → the bottom (`store/`, `settings/`, `migrations/`). The Stripe-compatible simulator (`simulator/`)
is a program of its own beside the platform: the platform's code never imports it except the shell's demo and chaos
tools, and it imports nothing of the platform. Nothing outside `store/` talks to PostgreSQL (psycopg).

Two seams between the edge and the actors are named here, each for a reason: the gateway reaches Ray (and the
actors) only through `gateway/dispatch.py`; the retry executors read a provider's credentials and clients through
the provider registry (`gateway/providers/`), which is shared by the webhook edge and the executors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("payrisk", "gateway", "actors", "strategies", "store", "settings", "migrations", "simulator")

#: layer of each package (a dotted prefix; the longest prefix wins): higher may import lower, never the reverse
LAYER = {"payrisk": 4, "gateway": 3, "actors": 3, "actors.domain": 2, "strategies": 2, "store": 1, "settings": 1,
         "migrations": 1, "simulator": 0}
#: allowed imports between the edge and the actors (same layer): (importer prefix, imported prefix)
SEAMS = {("gateway.dispatch", "actors"), ("actors", "gateway.providers"),
         # the core plans with the strategies (one layer: the rules as data and their interpretation)
         ("actors.domain", "strategies"),
         # simulated customers keep the same calendar (local time, business days) as the platform they exercise
         ("simulator", "strategies.calendar")}
#: the shell's tools that drive the simulator, and the simulator's own entry in the shell
USES_SIMULATOR = ("payrisk.demo", "payrisk.chaos", "payrisk.cli", "payrisk.whatif", "actors.executors", "bench")


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str | None:
    """The LAYER key that owns `module` (None: a library, not ours)."""
    candidates = [p for p in LAYER if module == p or module.startswith(p + ".")]
    return max(candidates, key=len) if candidates else None


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(module: str, imported: set[str]) -> list[str]:
    found = []
    mine = package_of(module)
    assert mine is not None
    for name in sorted(imported):
        theirs = package_of(name)
        if theirs is None or theirs == mine or any(module.startswith(a) and name.startswith(b) for a, b in SEAMS):
            continue
        if mine == "simulator":
            found.append(f"the simulator imports the platform ({name})")
        elif theirs == "simulator":
            if not module.startswith(USES_SIMULATOR):
                found.append(f"{module} imports the simulator ({name})")
        elif LAYER[theirs] >= LAYER[mine]:
            found.append(f"{module} (layer {LAYER[mine]}) imports {name} (layer {LAYER[theirs]})")
    return found


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_one_way(path: Path) -> None:
    assert violations(module_of(path), imports(path)) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_store_talks_to_postgresql(path: Path) -> None:
    if module_of(path).startswith("store"):
        return
    assert not {n for n in imports(path) if n.split(".")[0] in ("psycopg", "psycopg_pool")}


def test_the_rules_catch_each_kind_of_violation() -> None:
    assert violations("store.events", {"actors.domain.case"})  # the bottom importing the core
    assert violations("actors.domain.decide", {"actors.shard"})  # the core importing an actor
    assert violations("actors.domain.decide", {"store.events"}) == []  # down is fine
    assert violations("gateway.api", {"payrisk.cli"})  # the edge importing the shell
    assert violations("gateway.api", {"actors.system"})  # the edge reaching the actors beside dispatch
    assert violations("gateway.dispatch", {"actors.placement"}) == []  # … through its seam
    assert violations("actors.shard", {"gateway.providers"}) == []  # the provider registry seam
    assert violations("actors.shard", {"gateway.api"})
    assert violations("strategies.planner", {"simulator.core"})  # only the shell's tools drive the simulator
    assert violations("simulator.core", {"store.db"})
    assert violations("strategies.planner", {"actors.domain.case"})  # the seam goes one way only


SQL_WORDS = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE ", "ALTER ")


def sql_literals(path: Path) -> list[str]:
    """String constants that read as SQL statements (a query written outside the store)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.lstrip("( \n")  # SQL keywords as this codebase writes them: upper case
            if text.startswith(SQL_WORDS) and (" FROM " in text or " INTO " in text or " SET " in text
                                               or text.startswith(("CREATE ", "ALTER "))):
                found.append(node.value.strip()[:60])
    return found


@pytest.mark.parametrize("path", [p for p in SOURCES if not module_of(p).startswith(("store", "migrations"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_sql_statement_lives_in_the_store(path: Path) -> None:
    assert sql_literals(path) == []


def test_the_sql_check_sees_a_query(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('Q = "SELECT status FROM deliveries WHERE delivery_id = %s"\nW = "select the best time"\n')
    assert sql_literals(sneaky) == ["SELECT status FROM deliveries WHERE delivery_id = %s"]
