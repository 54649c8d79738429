"""API keys and roles: who may call what (pure logic; the HTTP layer is deployments/api/auth.py).

Roles:
- `hq`: every store and the chain-wide endpoints, read and write.
- `store`: its own store only (reads and writes), no chain-wide endpoints.
- `sre`: health and metrics only.

Keys come from the fleet config (`api.keys`, each naming an environment variable that holds the
secret, or a SHA-256 of it) and from `STOREFLEET_API_KEYS` (a JSON list of {key, role, store_id});
none are hard-coded. A fleet with no keys at all runs open (the local demo); `/health` says so.

Example:
    >>> keys = KeyRing([ResolvedKey("k1", "s3cret", Role.STORE, "S1")])
    >>> keys.authorize(keys.authenticate("s3cret"), Permission.DATA, "S2").allowed
    False
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_KEYS = "STOREFLEET_API_KEYS"


class Role(StrEnum):
    HQ = "hq"
    STORE = "store"
    SRE = "sre"


class Permission(StrEnum):
    HEALTH = "health"  #: /health
    METRICS = "metrics"  #: aggregated figures: store and chain metrics
    DATA = "data"  #: everything else that reads: events, funnel, heatmap, alerts, sessions, inventory
    WRITE = "write"  #: ingest, POS, alert ack/resolve, rules, uploads


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.HQ: frozenset(Permission),
    Role.STORE: frozenset(Permission),
    Role.SRE: frozenset({Permission.HEALTH, Permission.METRICS}),
}


class ApiKeyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Name of the key, shown in logs (never the secret).")
    role: Role = Field(description="hq (all stores), store (its own store), sre (health and metrics).")
    store_id: str | None = Field(None, description="The store a `store` key is limited to.")
    key_env: str | None = Field(None, description="Environment variable holding the secret key.")
    key_sha256: str | None = Field(None, description="Hex SHA-256 of the secret, for configs kept in git.")

    @model_validator(mode="after")
    def _consistent(self) -> ApiKeyConfig:
        if (self.key_env is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key_env or key_sha256")
        if self.role is Role.STORE and not self.store_id:
            raise ValueError("a `store` key needs store_id")
        if self.role is not Role.STORE and self.store_id:
            raise ValueError(f"store_id only applies to `store` keys, not {self.role}")
        return self


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKeyConfig] = Field(
        default_factory=list,
        description="API keys. With none here and none in STOREFLEET_API_KEYS the API is open (local demo).",
    )


@dataclass(frozen=True)
class ResolvedKey:
    id: str
    secret_or_hash: str  #: the secret, or "sha256:<hex>"
    role: Role
    store_id: str | None = None

    def matches(self, presented: str) -> bool:
        if self.secret_or_hash.startswith("sha256:"):
            digest = hashlib.sha256(presented.encode()).hexdigest()
            return hmac.compare_digest(digest, self.secret_or_hash.removeprefix("sha256:"))
        return hmac.compare_digest(presented.encode(), self.secret_or_hash.encode())


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int  #: 200, 401 or 403
    reason: str = ""


class KeyRingError(ValueError):
    """Key configuration that cannot be used; says which key and why."""


class KeyRing:
    def __init__(self, keys: list[ResolvedKey]) -> None:
        self.keys = keys

    @property
    def open(self) -> bool:
        """No keys configured: every request is allowed (local demo)."""
        return not self.keys

    @classmethod
    def from_config(cls, cfg: ApiConfig, environ: dict[str, str] | None = None) -> KeyRing:
        env = os.environ if environ is None else environ
        keys: list[ResolvedKey] = []
        for k in cfg.keys:
            if k.key_env is not None:
                secret = env.get(k.key_env)
                if not secret:
                    raise KeyRingError(f"api key {k.id!r}: environment variable {k.key_env} is not set")
                keys.append(ResolvedKey(k.id, secret, k.role, k.store_id))
            else:
                keys.append(ResolvedKey(k.id, f"sha256:{k.key_sha256}", k.role, k.store_id))
        raw = env.get(ENV_KEYS)
        if raw:
            try:
                entries = json.loads(raw)
                if not isinstance(entries, list):
                    raise TypeError("expected a JSON list")
                for i, e in enumerate(entries):
                    role, store = Role(e["role"]), e.get("store_id")
                    if (role is Role.STORE) != bool(store):
                        raise ValueError(f"entry {i}: store_id is required for, and only for, `store` keys")
                    keys.append(ResolvedKey(str(e.get("id", f"env{i}")), str(e["key"]), role, store))
            except (ValueError, TypeError, KeyError) as err:
                raise KeyRingError(f"{ENV_KEYS}: {err}") from None
        return cls(keys)

    def authenticate(self, presented: str | None) -> ResolvedKey | None:
        if not presented:
            return None
        return next((k for k in self.keys if k.matches(presented)), None)

    def authorize(
        self, key: ResolvedKey | None, permission: Permission, store_id: str | None = None, chain: bool = False
    ) -> Decision:
        """May `key` use `permission` on `store_id` (or chain-wide when `chain`)?"""
        if self.open:
            return Decision(True, 200)
        if key is None:
            return Decision(False, 401, "missing or unknown API key (send it as X-API-Key)")
        if permission not in ROLE_PERMISSIONS[key.role]:
            return Decision(False, 403, f"role {key.role} may not access {permission} endpoints")
        if key.role is Role.STORE:
            if chain:
                return Decision(False, 403, "store keys cannot read chain-wide figures")
            if store_id is not None and store_id != key.store_id:
                return Decision(False, 403, f"this key is limited to store {key.store_id}")
        return Decision(True, 200)
