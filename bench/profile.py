"""Profile the gateway process during a saturation run (py-spy) and name where the time goes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench import ingest, loadwrk

# The first matching (substring, bucket) rule names a sample's innermost payrisk-relevant frame.
BUCKETS = (
    ("stripe/_webhook", "signature check (stripe SDK HMAC)"),
    ("signature.py", "signature check (stripe SDK HMAC)"),
    ("hmac", "signature check (stripe SDK HMAC)"),
    ("psycopg", "PostgreSQL client (psycopg)"),
    ("redis", "Redis client (redis-py)"),
    ("pydantic", "normalization (pydantic models)"),
    ("providers/stripe", "envelope parse + normalization"),
    ("orjson", "JSON (orjson)"),
    ("structlog", "logging"),
    ("prometheus_client", "metrics"),
    ("ray/", "Ray driver (hand-off)"),
    ("gateway/dispatch", "Ray driver (hand-off)"),
    ("starlette", "Starlette routing/request"),
    ("uvicorn", "uvicorn HTTP protocol"),
    ("httptools", "uvicorn HTTP protocol"),
    ("gateway/", "gateway code"),
    ("asyncio", "event loop (asyncio/uvloop)"),
    ("uvloop", "event loop (asyncio/uvloop)"),
)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy not found (it is in the venv: .venv/bin/py-spy)")
    return found


def bucket_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for needle, name in BUCKETS:
            if needle in frame:
                return name
    return "other"


def summarize(collapsed: Path, top: int = 25) -> str:
    """Text summary: share of samples by bucket, by innermost frame (self), and by function (inclusive)."""
    buckets: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        frames = stack.split(";")
        buckets[bucket_of(stack)] += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [
        f"samples: {total} (py-spy, 100 Hz, all threads, idle excluded)",
        "",
        "## where the time goes (by bucket)",
    ]
    out += [f"{n / total:6.1%}  {name}" for name, n in buckets.most_common()]
    out += ["", f"## top {top} innermost frames (self time)"]
    out += [f"{n / total:6.1%}  {frame}" for frame, n in self_time.most_common(top)]
    out += ["", f"## top {top} frames by inclusive time"]
    out += [f"{n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out) + "\n"


def profile_gateway(database_url: str, out_dir: Path, seconds: int = 12, decisions: bool = True) -> str:
    """Run the gateway (1 worker: one process holds the whole ingest path), load it with wrk, sample it.
    `decisions=False`: the gateway without Ray (durable ingest alone), its files named `ingest-alone-profile.*`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "ingest-profile" if decisions else "ingest-alone-profile"
    collapsed = out_dir / f"{name}.collapsed.txt"
    with (
        tempfile.TemporaryDirectory(prefix="payrisk-profile-") as tmp,
        ingest.gateway(database_url, 1, Path(tmp) / "data", Path(tmp) / "gateway.log", decisions) as port,
    ):
        pid = _listener_pid(port)
        bench = ingest.IngestBench(database_url, port, Path(tmp), drain_cap=0.0)
        run, path = bench._lines(12_000 * (seconds + 4), 0.0)
        load = threading.Thread(
            target=loadwrk.run, args=(f"http://127.0.0.1:{port}", path), kwargs={"seconds": seconds + 4}
        )
        load.start()
        subprocess.run(
            [
                py_spy(),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(collapsed),
                "--nonblocking",
            ],
            check=True,
            capture_output=True,
            timeout=seconds + 60,
        )
        load.join()
    summary = summarize(collapsed)
    (out_dir / f"{name}.txt").write_text(summary)
    return summary


def _listener_pid(port: int) -> int:
    """The process listening on `port` (with one worker, `payrisk up` itself)."""
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split("pid=", 1)[1].split(",", 1)[0])
