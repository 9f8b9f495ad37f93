"""Embedded Redis after its owner was killed: the next start stops the server left running instead of starting a
second one on the same socket (each `kill -9` of `payrisk up` used to leave one behind)."""

from __future__ import annotations

from pathlib import Path

import redis

from payrisk.embedded import EmbeddedRedis, _cmdline


def test_a_start_stops_the_server_a_killed_owner_left_and_serves_on_the_socket(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    orphan = first.pid
    assert orphan is not None
    first._proc = None  # its owner died without stopping it: the server keeps running
    assert b"redis-server" in _cmdline(orphan)
    second = EmbeddedRedis(tmp_path)
    url = second.start()
    try:
        assert b"redis-server" not in _cmdline(orphan)
        client = redis.Redis(unix_socket_path=url.removeprefix("unix://"))
        assert client.set("k", "v") and client.get("k") == b"v"
        assert second.pid != orphan
    finally:
        second.stop()
    assert b"redis-server" not in _cmdline(second.pid or 0)


def test_a_pid_file_naming_another_process_is_left_alone(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.dir.mkdir(parents=True)
    server.pidfile.write_text("1")  # init: not a redis-server of this directory
    server.start()
    try:
        assert server.pid is not None
    finally:
        server.stop()
