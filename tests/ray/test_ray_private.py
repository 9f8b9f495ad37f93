"""A local Ray started by payrisk keeps its files private (issue 16, point 6): the auth token 0600 and its temp
dir 0700 (Ray leaves them 0644 / 0777). Run in a subprocess: the session's own Ray is already initialized."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json
from pathlib import Path
import ray
from actors.raysys import exposed_ports, start_ray
start_ray(None, include_dashboard=False)
session = Path(ray._private.worker._global_node.get_session_dir_path())
token = Path.home() / ".ray" / "auth_token"
print(json.dumps({"tmp": session.parent.stat().st_mode & 0o777, "session": session.stat().st_mode & 0o777,
                  "token": token.stat().st_mode & 0o777, "exposed": exposed_ports(),
                  "node_ip": ray.nodes()[0]["NodeManagerAddress"]}))
ray.shutdown()
"""


def test_a_local_ray_keeps_its_token_and_temp_dir_private() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["tmp"] == 0o700 and found["session"] == 0o700
    assert found["token"] == 0o600
    assert isinstance(found["exposed"], list)  # Ray's gRPC servers: listed, documented, token-protected
