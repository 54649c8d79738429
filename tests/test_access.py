"""API keys and roles: the rules as a table, then the same rules through HTTP (real Redis)."""

from __future__ import annotations

import hashlib

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import core
from deployments.api.context import ApiContext, set_context
from workloads.access import ApiConfig, KeyRing, KeyRingError, Permission, ResolvedKey, Role
from workloads.config import FleetConfig

RING = KeyRing([
    ResolvedKey("hq", "hq-secret", Role.HQ),
    ResolvedKey("s1", "s1-secret", Role.STORE, "S1"),
    ResolvedKey("sre", "sre-secret", Role.SRE),
    ResolvedKey("hashed", "sha256:" + hashlib.sha256(b"from-git").hexdigest(), Role.HQ),
])


@pytest.mark.parametrize(
    ("presented", "permission", "store", "chain", "status"),
    [
        (None, Permission.DATA, "S1", False, 401),
        ("wrong", Permission.HEALTH, None, False, 401),
        ("hq-secret", Permission.DATA, "S2", False, 200),
        ("hq-secret", Permission.METRICS, None, True, 200),
        ("from-git", Permission.WRITE, "S1", False, 200),
        ("s1-secret", Permission.DATA, "S1", False, 200),
        ("s1-secret", Permission.WRITE, "S1", False, 200),
        ("s1-secret", Permission.DATA, "S2", False, 403),
        ("s1-secret", Permission.METRICS, None, True, 403),
        ("sre-secret", Permission.HEALTH, None, False, 200),
        ("sre-secret", Permission.METRICS, "S1", False, 200),
        ("sre-secret", Permission.DATA, "S1", False, 403),
        ("sre-secret", Permission.WRITE, "S1", False, 403),
    ],
)
def test_role_rules(presented, permission, store, chain, status) -> None:
    d = RING.authorize(RING.authenticate(presented), permission, store, chain)
    assert d.status == status and d.allowed == (status == 200)


def test_no_keys_means_open() -> None:
    ring = KeyRing([])
    assert ring.open and ring.authorize(None, Permission.WRITE, "S1").allowed


@pytest.mark.parametrize(
    ("cfg", "env", "error"),
    [
        ({"keys": [{"id": "a", "role": "hq", "key_env": "NOPE"}]}, {}, "NOPE is not set"),
        ({}, {"STOREFLEET_API_KEYS": "not json"}, "STOREFLEET_API_KEYS"),
        ({}, {"STOREFLEET_API_KEYS": '[{"key": "k", "role": "store"}]'}, "store_id is required"),
        ({}, {"STOREFLEET_API_KEYS": '[{"key": "k", "role": "boss"}]'}, "boss"),
    ],
)
def test_bad_key_config_names_the_problem(cfg, env, error) -> None:
    with pytest.raises(KeyRingError, match=error):
        KeyRing.from_config(ApiConfig.model_validate(cfg), env)


def test_keys_from_env_and_config() -> None:
    cfg = ApiConfig.model_validate({"keys": [{"id": "ops", "role": "sre", "key_env": "OPS_KEY"}]})
    ring = KeyRing.from_config(cfg, {"OPS_KEY": "x", "STOREFLEET_API_KEYS": '[{"key": "y", "role": "hq"}]'})
    assert ring.authenticate("x").role is Role.SRE and ring.authenticate("y").role is Role.HQ


@pytest.fixture
def client(redis_url: str) -> TestClient:
    """The core routes over a real Redis, for a two-store fleet guarded by RING's keys."""
    fleet = FleetConfig.model_validate({"stores": [
        {"id": sid, "cameras": [{"id": f"C{sid}", "source": "synthetic:empty"}]} for sid in ("S1", "S2")
    ]})
    ctx = ApiContext.create(fleet, redis_url)
    ctx.keys = RING
    set_context(ctx)
    app = FastAPI()
    app.include_router(core.router)
    return TestClient(app)


@pytest.mark.parametrize(
    ("key", "path", "status"),
    [
        (None, "/health", 401),
        ("sre-secret", "/health", 200),
        ("sre-secret", "/stores/S1/events", 403),
        ("s1-secret", "/stores/S1/events", 200),
        ("s1-secret", "/stores/S2/events", 403),
        ("hq-secret", "/stores/S2/events", 200),
        ("hq-secret", "/stores/NOPE/events", 404),
    ],
)
def test_http_routes_enforce_roles(client: TestClient, key, path, status) -> None:
    headers = {"X-API-Key": key} if key else {}
    assert client.get(path, headers=headers).status_code == status


def test_store_key_lists_only_its_store(client: TestClient) -> None:
    assert [s["id"] for s in client.get("/stores", headers={"Authorization": "Bearer s1-secret"}).json()] == ["S1"]
    assert len(client.get("/stores", headers={"X-API-Key": "hq-secret"}).json()) == 2
