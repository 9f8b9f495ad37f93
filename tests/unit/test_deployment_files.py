"""Offline validation of the deployment files: docker-compose.yml, Dockerfile, ray_cluster.yaml, deploy/.

No Docker engine and no cluster here: the compose file is checked against the compose-spec JSON schema bundled
with check-jsonschema, the cluster file with Ray's own launcher validation, and both plus the Dockerfile with
structural assertions about what the stack needs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CLUSTER = ROOT / "ray_cluster.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
BIN = Path(sys.executable).parent
RAY_SERVICES = ("ray-head", "ray-worker", "gateway")
DEFAULT_REDIS_PORT = 6379

Compose = dict[str, Any]


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return load_yaml(CLUSTER)


def service(compose: Compose, name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def command_text(svc: dict[str, Any]) -> str:
    command = svc.get("command", "")
    return command if isinstance(command, str) else shlex.join(command)


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with its vendored compose-spec schema: no network needed."""
    args = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


# --- docker-compose.yml


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_schema_check_rejects_a_malformed_service(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  gateway:\n    image: payrisk\n    depends_on: 7\n    ports: 8000\n")
    result = check_compose_schema(broken)
    assert result.returncode != 0


def test_compose_file_has_no_obsolete_version_key(compose: Compose) -> None:
    assert "version" not in compose


def test_every_service_the_issue_names_exists(compose: Compose) -> None:
    expected = {"postgres", "redis", "ray-head", "ray-worker", "gateway", "migrate", "mailpit", "simulator"}
    assert expected <= set(compose["services"])


def test_every_long_running_service_declares_a_healthcheck(compose: Compose) -> None:
    for name, svc in compose["services"].items():
        if name == "migrate":
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name


def test_postgres_is_checked_with_pg_isready_and_keeps_its_data_in_a_volume(compose: Compose) -> None:
    postgres = service(compose, "postgres")
    assert re.fullmatch(r"postgres:1[56](\..*)?", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]


def test_redis_is_version_seven(compose: Compose) -> None:
    assert re.fullmatch(r"redis:7(\..*)?(-.*)?", service(compose, "redis")["image"])


def test_gateway_waits_for_healthy_stores_and_ray_head_and_finished_migrations(compose: Compose) -> None:
    depends = service(compose, "gateway")["depends_on"]
    for name in ("postgres", "redis", "ray-head"):
        assert depends[name]["condition"] == "service_healthy", name
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_gateway_serves_payrisk_up_on_port_8000_and_uses_the_compose_stores(compose: Compose) -> None:
    gateway = service(compose, "gateway")
    env = gateway["environment"]
    assert command_text(gateway) == "payrisk up"
    assert env["PAYRISK_PORT"] == "8000" and env["PAYRISK_HOST"] == "0.0.0.0"
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["SMTP_URL"] == "smtp://mailpit:1025"


def gcs_port(compose: Compose) -> int:
    match = re.search(r"--port[= ](\d+)", command_text(service(compose, "ray-head")))
    assert match is not None
    return int(match.group(1))


def test_ray_head_runs_blocking_with_its_dashboard_on_all_interfaces(compose: Compose) -> None:
    command = command_text(service(compose, "ray-head"))
    assert command.startswith("ray start --head") and "--block" in command
    assert re.search(r"--dashboard-host[= ]0\.0\.0\.0", command)
    assert "127.0.0.1:8265:8265" in service(compose, "ray-head")["ports"]


def test_ray_gcs_port_does_not_clash_with_redis(compose: Compose) -> None:
    assert gcs_port(compose) != DEFAULT_REDIS_PORT


def test_gateway_and_workers_join_the_head_gcs_port(compose: Compose) -> None:
    address = f"ray-head:{gcs_port(compose)}"
    assert service(compose, "gateway")["environment"]["RAY_ADDRESS"] == address
    assert f"--address={address}" in command_text(service(compose, "ray-worker"))


def test_ray_workers_can_be_scaled(compose: Compose) -> None:
    worker = service(compose, "ray-worker")
    assert worker["deploy"]["replicas"] >= 1
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"


def published_ports(compose: Compose) -> list[str]:
    return [str(port) for svc in compose["services"].values() for port in svc.get("ports", [])]


def test_published_ports_bind_loopback_only(compose: Compose) -> None:
    ports = published_ports(compose)
    assert ports
    assert all(port.startswith("127.0.0.1:") for port in ports), ports


def test_host_ports_are_unique_and_expose_the_gateway_dashboard_and_mail_ui(compose: Compose) -> None:
    host_ports = [port.split(":")[1] for port in published_ports(compose)]
    assert len(host_ports) == len(set(host_ports))
    assert {"8000", "8265", "8025"} <= set(host_ports)


def test_postgres_and_redis_are_not_published_to_the_host(compose: Compose) -> None:
    assert "ports" not in service(compose, "postgres") and "ports" not in service(compose, "redis")


def test_every_ray_process_shares_the_token_secret(compose: Compose) -> None:
    assert compose["secrets"]["ray_auth_token"] == {"environment": "RAY_AUTH_TOKEN"}
    for name in RAY_SERVICES:
        svc = service(compose, name)
        assert svc["environment"]["RAY_AUTH_MODE"] == "${RAY_AUTH_MODE:-token}", name
        assert svc["environment"]["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name
        assert "ray_auth_token" in svc["secrets"], name


def test_mail_catcher_takes_smtp_on_1025_and_shows_a_web_ui_on_8025(compose: Compose) -> None:
    mailpit = service(compose, "mailpit")
    assert mailpit["image"].startswith("axllent/mailpit:")
    assert "1025" in mailpit["expose"] and "127.0.0.1:8025:8025" in mailpit["ports"]


def test_migrate_is_a_one_shot_after_postgres_is_healthy(compose: Compose) -> None:
    migrate = service(compose, "migrate")
    assert command_text(migrate) == "payrisk migrate"
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_simulator_runs_only_under_the_sim_profile(compose: Compose) -> None:
    simulator = service(compose, "simulator")
    assert simulator["profiles"] == ["sim"]
    assert command_text(simulator).startswith("payrisk simulator")


def test_services_of_our_image_are_built_from_the_repository_dockerfile(compose: Compose) -> None:
    for name in ("ray-head", "ray-worker", "gateway", "migrate", "simulator"):
        build = service(compose, name)["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name


# --- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in logical.splitlines())
    pairs = (line.split(maxsplit=1) for line in lines if line and not line.startswith("#"))
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def last(instruction: str) -> str:
    values = [args for name, args in dockerfile_instructions() if name == instruction]
    assert values, f"no {instruction} in the Dockerfile"
    return values[-1]


@dataclass(frozen=True)
class Stage:
    base: str
    name: str
    #: (INSTRUCTION, arguments, the WORKDIR in force)
    steps: list[tuple[str, str, str]]

    def runs(self) -> str:
        return " ".join(args for name, args, _ in self.steps if name == "RUN")

    def copies(self) -> list[tuple[str, list[str], str, int]]:
        """(--from stage or "", sources, destination made absolute, step index) of each COPY."""
        found = []
        for index, (name, args, workdir) in enumerate(self.steps):
            if name == "COPY":
                words = shlex.split(args)
                origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), "")
                paths = [w for w in words if not w.startswith("--")]
                found.append((origin, paths[:-1], absolute(workdir, paths[-1]), index))
        return found


def absolute(workdir: str, path: str) -> str:
    return os.path.normpath(path if path.startswith("/") else f"{workdir}/{path}")


def dockerfile_stages() -> list[Stage]:
    stages: list[Stage] = []
    for name, args in dockerfile_instructions():
        if name == "FROM":
            base, _, alias = re.sub(r"\s+as\s+", " AS ", args, flags=re.IGNORECASE).partition(" AS ")
            stages.append(Stage(base.strip(), alias.strip() or str(len(stages)), []))
        else:
            workdir = next((a for n, a, _ in reversed(stages[-1].steps) if n == "WORKDIR"), "/")
            stages[-1].steps.append((name, args, absolute(workdir, args) if name == "WORKDIR" else workdir))
    return stages


def test_the_image_is_built_from_python_311_slim() -> None:
    assert dockerfile_stages()[-1].base == "python:3.11-slim"


def test_dockerfile_runs_as_a_non_root_user_before_its_entrypoint() -> None:
    names = [name for name, _ in dockerfile_instructions()]
    user = last("USER").split(":")[0]
    assert user not in ("root", "0")
    assert names.index("USER") < names.index("ENTRYPOINT") and names.index("USER") < names.index("CMD")


def test_dockerfile_pip_installs_the_project() -> None:
    runs = " ".join(args for name, args in dockerfile_instructions() if name == "RUN")
    assert re.search(r"pip install [^&]*-e \.", runs)


def test_dockerfile_healthcheck_probes_healthz() -> None:
    healthcheck = last("HEALTHCHECK")
    assert "/app/deploy/healthcheck.py" in healthcheck
    assert load_healthcheck().default_url({"PAYRISK_PORT": "8000"}) == "http://127.0.0.1:8000/healthz"


def test_dockerfile_default_command_serves_the_gateway_through_the_entrypoint() -> None:
    assert last("ENTRYPOINT") == '["/app/deploy/entrypoint.sh"]'
    assert last("CMD") == '["payrisk", "up"]'
    assert "8000" in last("EXPOSE")


def test_the_dashboard_assets_come_from_npm_through_the_install_script_in_a_node_stage() -> None:
    [node] = [stage for stage in dockerfile_stages() if stage.base.startswith("node:")]
    sources = {path for _, paths, _, _ in node.copies() for path in paths}
    assert {"scripts/dashboard-assets.sh", "gateway/dashboard/assets/"} <= sources  # the pinned package files
    assert (ROOT / "gateway/dashboard/assets/package-lock.json").is_file()
    assert re.search(r"\bbash scripts/dashboard-assets\.sh\b", node.runs())


def test_the_image_gets_the_assets_where_the_package_serves_them() -> None:
    from gateway.dashboard.render import STATIC

    stages = dockerfile_stages()
    [node], final = [s for s in stages if s.base.startswith("node:")], stages[-1]
    ran_in = next(workdir for name, _, workdir in node.steps if name == "RUN")  # where the script wrote vendor/
    [(_, _, app, tree_at)] = [c for c in final.copies() if c[1] == ["."]]
    [(_, sources, destination, at)] = [c for c in final.copies() if c[0] == node.name]
    vendor = str((STATIC / "vendor").relative_to(ROOT))
    assert [absolute(ran_in, path) for path in sources] == [absolute(ran_in, vendor)]
    assert destination == absolute(app, vendor)
    assert at > tree_at  # after the source tree, or a checkout's own vendor/ would be what ships


def copied_by_the_asset_script() -> set[tuple[str, str]]:
    """(folder under vendor/, file name) of each file scripts/dashboard-assets.sh copies."""
    logical = re.sub(r"\\\n", " ", (ROOT / "scripts" / "dashboard-assets.sh").read_text())
    copied: set[tuple[str, str]] = set()
    for line in (line.strip() for line in logical.splitlines()):
        if line.startswith("cp "):
            *sources, target = shlex.split(line)[1:]
            copied |= {(target.removeprefix("$vendor/").strip("/"), Path(source).name) for source in sources}
    return copied


def test_every_bundled_file_a_page_loads_is_one_the_asset_script_copies() -> None:
    templates = " ".join(p.read_text() for p in (ROOT / "gateway/dashboard/templates").glob("*.html"))
    loaded = set(re.findall(r"/dashboard/static/vendor/([\w.-]+)/([\w.-]+)", templates))
    assert {("uplot", "uPlot.iife.min.js"), ("swagger-ui", "swagger-ui-bundle.js")} <= loaded
    assert loaded <= copied_by_the_asset_script()


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {".git", ".venv", ".env", "deploy/cluster.env"} <= ignored


# --- deploy/


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", ROOT / "deploy" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_follows_the_configured_gateway_port() -> None:
    assert load_healthcheck().default_url({"PAYRISK_PORT": "9100"}) == "http://127.0.0.1:9100/healthz"


def test_healthcheck_treats_a_tcp_target_without_a_port_as_unhealthy() -> None:
    assert load_healthcheck().tcp_ok("tcp://127.0.0.1") is False


def run_entrypoint(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": env.pop("HOME", "/nonexistent")}
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_entrypoint_is_executable_posix_shell() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=False).returncode == 0


def test_entrypoint_refuses_to_start_ray_with_token_auth_and_no_token(tmp_path: Path) -> None:
    result = run_entrypoint(["ray", "--version"], {"RAY_AUTH_MODE": "token", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "RAY_AUTH_TOKEN" in result.stderr


def test_entrypoint_accepts_a_token_file_and_runs_the_command(tmp_path: Path) -> None:
    token = tmp_path / "ray_auth_token"
    token.write_text("0123456789abcdef")
    result = run_entrypoint(
        ["ray", "--version"], {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    )
    assert result.returncode == 0, result.stderr
    assert "2." in result.stdout


def test_entrypoint_runs_other_commands_unchanged() -> None:
    result = run_entrypoint(["echo", "hello", "world"], {"RAY_AUTH_MODE": "token"})
    assert (result.returncode, result.stdout) == (0, "hello world\n")


# --- ray_cluster.yaml


def test_ray_cluster_file_passes_rays_own_validation(cluster: dict[str, Any]) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(cluster))


def test_rays_validation_rejects_an_unknown_cluster_field(cluster: dict[str, Any]) -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config({**cluster, "head_start_commands": ["ray start --head"]}))


def test_ray_cluster_declares_a_head_and_a_worker_node_type(cluster: dict[str, Any]) -> None:
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] == "head" and {"head", "worker"} <= set(types)
    assert 1 <= types["worker"]["min_workers"] <= types["worker"]["max_workers"] <= cluster["max_workers"]


def test_every_node_installs_payrisk(cluster: dict[str, Any]) -> None:
    setup = " ".join(cluster["setup_commands"])
    assert re.search(r"pip install .*~/payrisk", setup)
    assert cluster["file_mounts"]["~/payrisk"] == "."


def test_head_and_worker_start_commands_reference_payrisk(cluster: dict[str, Any]) -> None:
    head = " ".join(cluster["head_start_ray_commands"])
    worker = " ".join(cluster["worker_start_ray_commands"])
    assert "payrisk migrate" in head and "payrisk up" in head
    assert "payrisk" in worker


def test_cluster_workers_join_the_head_gcs_port(cluster: dict[str, Any]) -> None:
    head = " ".join(cluster["head_start_ray_commands"])
    worker = " ".join(cluster["worker_start_ray_commands"])
    port = re.search(r"ray start --head --port=(\d+)", head)
    assert port is not None and int(port.group(1)) != DEFAULT_REDIS_PORT
    assert f"--address=$RAY_HEAD_IP:{port.group(1)}" in worker


def test_every_cluster_ray_process_runs_with_the_shared_token(cluster: dict[str, Any]) -> None:
    assert cluster["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    commands = cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]
    ray_processes = [command for command in commands if "ray start" in command or "payrisk up" in command]
    assert len(ray_processes) == 3
    assert all("RAY_AUTH_MODE=token" in command for command in ray_processes)
