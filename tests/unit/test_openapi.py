"""The OpenAPI description matches the routes the gateway serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gateway.app import ROUTES
from gateway.auth.policy import is_page
from gateway.providers import registry

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())


def _template(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)


def test_every_served_route_is_described_and_every_described_path_is_served() -> None:
    # `{provider}`: each registered provider (an unknown one is a 404 only); pages for people (the dashboard,
    # /docs) are HTML, not part of the API
    served = {_template(r.path) for r in ROUTES if "{provider}" not in r.path and not is_page(r.path)}
    served |= {_template(r.path).replace("{provider}", name) for r in ROUTES if "{provider}" in r.path
               for name in registry.NAMES}
    assert served == set(SPEC["paths"])


def test_the_get_endpoint_check_is_described_for_the_provider_that_makes_it() -> None:
    for name in registry.NAMES:
        provider = registry.get(name)
        assert provider is not None
        for path in (f"/webhooks/{name}", f"/webhooks/{name}/{{tenant}}"):
            assert "post" in SPEC["paths"][path]
            assert ("get" in SPEC["paths"][path]) == (provider.challenge is not None), path


def test_every_error_response_is_a_problem_document() -> None:
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and path != "/readyz":  # 503 there lists each dependency
                    assert response == {"$ref": "#/components/responses/Problem"}, (path, method, status)
