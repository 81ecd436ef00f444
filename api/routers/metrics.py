"""``/metrics``: the Prometheus text exposition of the service (see :mod:`api.metrics`).

Figures of load and data volumes are for operators: only callers on the server's own host
(loopback) or with an admin key get them, unless ``CIM_METRICS_PUBLIC=true``. Behind a reverse
proxy on the same host the proxy must pass ``X-Forwarded-For`` (uvicorn trusts it from
loopback), or every outside caller would look local. Not in the OpenAPI document: it is not
part of the data API.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import PrincipalDep
from api.deps import SettingsDep
from api.metrics import scrape
from api.sessions import ReleasingRoute
from cim.services.access import require_role

router = APIRouter(route_class=ReleasingRoute, tags=["operations"])


def is_loopback(request: Request) -> bool:
    """Whether the caller is on this host (after proxy headers, as uvicorn resolves them).

    Examples
    --------
    >>> from starlette.requests import Request
    >>> is_loopback(Request({"type": "http", "client": ("::1", 5000)}))
    True
    >>> is_loopback(Request({"type": "http", "client": ("testclient", 50000)}))
    False
    """
    if request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an address (a test client, a unix socket path)
        return False


async def metrics_access(request: Request, principal: PrincipalDep, settings: SettingsDep) -> None:
    """Allow public scrapes (``CIM_METRICS_PUBLIC``), loopback callers and admin keys; 401
    for other anonymous callers, 403 for keys below admin."""
    if settings.metrics_public or is_loopback(request):
        return
    require_role(principal, "admin")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    include_in_schema=False,
    response_class=Response,
    dependencies=[Depends(metrics_access)],
)
def metrics(request: Request) -> Response:
    """Every metric, summed over the server's worker processes (multiprocess mode)."""
    return Response(scrape(request.app.state), media_type=CONTENT_TYPE_LATEST)
