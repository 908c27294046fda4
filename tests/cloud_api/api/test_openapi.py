"""Schemathesis against the OpenAPI schema: generated requests to every operation, with valid keys
for the caller kind each path expects, must never produce a server error (5xx)."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from tests.cloud_api.conftest import World


def _key_for(path: str, w: World) -> str:
    if path.startswith("/v1/gates"):
        return w.gate_key
    if path.startswith("/v1/edge"):
        return w.edge_key
    if path.startswith("/v1/shoppers"):
        return w.shoppers["alice"][1]
    return w.staff["admin"]


def test_every_operation_is_documented(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    routes = {r.path for r in app.routes if getattr(r, "include_in_schema", False)}  # type: ignore[attr-defined]
    assert routes <= set(paths)
    assert len(paths) >= 15
    for path, ops in paths.items():
        for method, op in ops.items():
            assert op.get("description"), f"{method} {path} has no description"


def test_no_server_errors(app: FastAPI, world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Case[Any]) -> None:
            response = case.call(headers={"Authorization": f"Bearer {_key_for(case.path, world)}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
            case.validate_response(response, checks=[not_a_server_error])

        run()
    assert failures == []


def test_nul_characters_in_ids_are_a_client_error(client: TestClient, world: World) -> None:
    r = client.get("/v1/staff/visits/v-%00x", headers={"Authorization": f"Bearer {world.staff['admin']}"})
    assert r.status_code in (400, 404)
    assert "message" in r.json()
