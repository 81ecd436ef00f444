"""Who is calling: the API key from ``X-API-Key`` or ``Authorization: Bearer``, as a Principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.deps import SettingsDep
from api.telemetry import note_key
from cim.errors import AuthenticationRequired
from cim.services.access import ANONYMOUS, Principal, authenticate, require_role

# auto_error=False: a missing key means anonymous, decided by each route's policy.
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def get_principal(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller; a key that is given but unknown or revoked is a 401, never anonymous.

    Anonymous callers cost no thread and no connection; a key is looked up on a worker thread
    in its own short transaction (which also records when the key was last used).
    """
    secret = api_key or (bearer.credentials if bearer is not None else None)
    if secret is None:
        return ANONYMOUS
    secret = secret.strip()
    if not secret or len(secret) > 256:
        raise AuthenticationRequired("the API key is unknown or revoked")
    principal = await run_in_threadpool(_authenticate, request.app.state.engine, secret)
    note_key(principal.key_id)  # the access log line names the key (never the secret)
    return principal


def _authenticate(engine: Engine, secret: str) -> Principal:
    with Session(engine) as session, session.begin():
        return authenticate(session, secret=secret)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def hidden_utilities(principal: PrincipalDep, settings: SettingsDep) -> frozenset[str]:
    """Classes an anonymous caller may not see (CIM_SENSITIVE_UTILITIES, gas and power by
    default): left out of area answers, and the datasets holding them are not listed; analyses
    starting from them answer 401. Empty for callers with a key."""
    return frozenset() if not principal.anonymous else settings.sensitive_utility_set


HiddenDep = Annotated[frozenset[str], Depends(hidden_utilities)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """Dependency of every write: the caller must hold the admin role."""
    require_role(principal, "admin")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


async def require_analyst(principal: PrincipalDep) -> Principal:
    """Dependency of analyses that store results (shelter plans): analyst or admin."""
    require_role(principal, "analyst")
    return principal


AnalystDep = Annotated[Principal, Depends(require_analyst)]


def client_address(request: Request) -> str | None:
    """The caller's address for the audit log (after proxy headers, as uvicorn resolves them)."""
    return request.client.host if request.client else None
