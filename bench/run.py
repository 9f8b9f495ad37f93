"""One command per benchmark: `python -m bench.run {ceilings,ingest,profile,all}`.

Each prints its table and writes JSON plus a Markdown section under bench/results/; `all` (and any command
with `--doc`) assembles docs/bench-ingest.md from the sections of this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import bodies, ceilings, database, ingest, profile, report
from payrisk.progress import progress_bar

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "bench-ingest.md"
DBNAME = "payrisk_bench"


def _save(name: str, data: Any, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown, flush=True)


def _load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return orjson.loads(path.read_bytes()) if path.exists() else None


def run_ceilings(args: argparse.Namespace, database_url: str) -> None:
    database.execute(database_url, ceilings._PG_TABLE)
    with tempfile.TemporaryDirectory(prefix="payrisk-ceil-") as tmp:
        lines = Path(tmp) / "bodies.lines"
        bodies.write(lines, "ceiling", 60_000, int(dt.datetime.now().timestamp()))
        data = ceilings.measure(DBNAME, lines, repeats=args.repeats, seconds=args.seconds)
    database.execute(database_url, "DROP TABLE bench_upsert")
    _save("ceilings", data, report.ceilings_md(data))


def run_ingest(args: argparse.Namespace, database_url: str) -> None:
    data: dict[str, Any] = {}
    name = "ingest-alone" if args.without_decisions else "ingest"  # kept apart: both are read beside the ceilings
    for workers in args.workers:
        data[str(workers)] = ingest.measure(
            database_url, workers, repeats=args.repeats, seconds=args.seconds, drain_cap=args.drain_cap,
            decisions=not args.without_decisions,
        )
        _save(name, data, report.ingest_md(data))  # keep what is measured if a later step fails
    removed = database.delete_redis_keys("payrisk:dlv:*")
    print(f"  removed {removed} Redis idempotency keys written by the runs", flush=True)
    markdown = report.ingest_md(data)
    ceil = _load("ceilings")
    if ceil:
        markdown += "\n" + report.ratios_md(ceil, data) + "\n" + report.goals_md(ceil, data)
    _save(name, data, markdown)


def run_profile(args: argparse.Namespace, database_url: str) -> None:
    alone = args.without_decisions
    summary = profile.profile_gateway(database_url, RESULTS, seconds=min(args.seconds, 20), decisions=not alone)
    database.delete_redis_keys("payrisk:dlv:*")
    name = "ingest-alone-profile" if alone else "ingest-profile"
    _save(
        "profile-alone" if alone else "profile",
        {"summary": summary},
        f"## Profile of the ingest path{' (gateway alone, no Ray)' if alone else ''} (1 worker, wrk -t2 -c64)"
        "\n\n```\n"
        + summary.split("## top 25 innermost")[0].strip()
        + "\n```\n\nFull summary:"
        f" `bench/results/{name}.txt`;"
        f" collapsed stacks: `bench/results/{name}.collapsed.txt`.\n",
    )


def assemble(command: str) -> None:
    recorded = RESULTS / "command.txt"  # the measuring command, kept when only the report is re-rendered
    if command.endswith(" report") and recorded.exists():
        command, date = recorded.read_text().split("\n")[:2]
    else:
        date = dt.date.today().isoformat()
        recorded.write_text(f"{command}\n{date}\n")
    parts = ["# Ingest benchmarks (issue 9)", "", report.machine(command, date)]
    for name in ("ceilings", "ingest", "profile", "findings"):  # findings.md: the hand-written reading
        path = RESULTS / f"{name}.md"
        if path.exists():
            parts.append(path.read_text())
    DOC.write_text("\n".join(parts))
    print(f"wrote {DOC.relative_to(ROOT)}")


def rerender(args: argparse.Namespace, database_url: str | None) -> None:
    """Rewrite the Markdown sections from the saved JSON (after a change to the report layout)."""
    ceil, data = _load("ceilings"), _load("ingest")
    if ceil:
        (RESULTS / "ceilings.md").write_text(report.ceilings_md(ceil))
    if data:
        markdown = report.ingest_md(data)
        if ceil:
            markdown += "\n" + report.ratios_md(ceil, data) + "\n" + report.goals_md(ceil, data)
        (RESULTS / "ingest.md").write_text(markdown)


COMMANDS = {
    "ceilings": (run_ceilings,),
    "ingest": (run_ingest,),
    "profile": (run_profile,),
    "all": (run_ceilings, run_ingest, run_profile),
    "report": (),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians are reported")
    parser.add_argument("--seconds", type=int, default=10, help="length of each load run (≤ 30)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="gateway worker counts")
    parser.add_argument(
        "--drain-cap",
        type=float,
        default=45.0,
        help="seconds to let the actors finish a run's backlog before the next run",
    )
    parser.add_argument("--without-decisions", action="store_true",
                        help="ingest, profile: the gateway without Ray (durable ingest alone, nothing handed off)")
    parser.add_argument("--doc", action="store_true", help="(re)write docs/bench-ingest.md afterwards")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 30:
        parser.error("--seconds must be between 1 and 30")
    if args.command == "report":
        rerender(args, None)
    else:
        steps = COMMANDS[args.command]
        with database.fresh_database(DBNAME) as database_url, progress_bar(sys.stderr, len(steps), "benchmarks") as bar:
            for step in steps:
                bar.describe(step.__name__.removeprefix("run_"))
                step(args, database_url)
                bar.advance(1)
    if args.command in ("all", "report") or args.doc:
        assemble("python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
