"""The route class every API route uses: it names the route on the request's log keys, then
authenticates and authorizes from the path before anything else runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from chroma_serverless.auth.access import ANONYMOUS
from chroma_serverless.auth.actions import PUBLIC_ROUTES, ROUTE_ACTIONS
from chroma_serverless.http.requests import JsonRequest
from chroma_serverless.http.telemetry import route_selected

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from fastapi import Request
    from fastapi.responses import Response

    from chroma_serverless.auth.access import Authenticator


def guarded_route(authenticator: Authenticator) -> type[APIRoute]:
    """A route class that names the route on the request's log keys, then authenticates and
    authorizes from the path before anything else runs (before the body is even parsed): 401
    for no or unknown credentials, 403 outside the scope."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            action = ROUTE_ACTIONS.get(self.name)
            assert action is not None or self.name in PUBLIC_ROUTES, f"{self.name} has no action"

            async def guarded(request: Request) -> Response:
                route_selected(request, self)
                request = JsonRequest(request.scope, request.receive)
                if action is None:
                    return await handler(request)
                principal = ANONYMOUS  # auth off: no credentials to look up, no thread hop
                if authenticator.enabled:
                    principal = await run_in_threadpool(authenticator.authenticate, request.headers)
                params = request.path_params
                authenticator.authorize(
                    principal, action, params.get("tenant"), params.get("database")
                )
                request.state.principal = principal
                return await handler(request)

            return guarded

    return GuardedRoute
