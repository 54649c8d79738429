"""API-key checks as FastAPI dependencies: `dependencies=[require(Permission.DATA)]` on a route.

The rules live in `workloads.access`; this only reads the key (X-API-Key header, or
`Authorization: Bearer <key>`), finds the route's `store_id` path parameter and turns a refusal into
401/403. The header scheme is declared so /docs shows an Authorize button.
"""

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from deployments.api.context import Ctx
from workloads.access import Permission, ResolvedKey

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="StoreFleet API key")
bearer = HTTPBearer(auto_error=False, description="The same API key as a bearer token")


def require(permission: Permission, chain: bool = False) -> Any:
    """Dependency that admits keys allowed `permission` on the route's store (or chain-wide)."""

    def check(
        request: Request,
        ctx: Ctx,
        key: Annotated[str | None, Depends(api_key_header)] = None,
        token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
    ) -> ResolvedKey | None:
        principal = ctx.keys.authenticate(key or (token.credentials if token else None))
        decision = ctx.keys.authorize(principal, permission, request.path_params.get("store_id"), chain)
        if not decision.allowed:
            headers = {"WWW-Authenticate": "ApiKey"} if decision.status == 401 else None
            raise HTTPException(decision.status, decision.reason, headers=headers)
        return principal

    return Depends(check)


Principal = ResolvedKey | None
