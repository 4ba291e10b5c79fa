"""The playground: a single page served by the gateway at ``/``, its assets under ``/playground/``.

Plain HTML, CSS and JavaScript shipped inside the package (no CDN, nothing
fetched from anywhere but the gateway itself), so it loads instantly and works
offline. The page only talks to the gateway's own API: the chat and feature
endpoints, ``/v1/privacy/scan`` for the redaction preview and the consent
dialog, and ``/v1/route/recent`` for the list of routing decisions.

    from tether.gateway.playground import playground_routes
    app = Starlette(routes=[*api_routes, *playground_routes()])
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).with_name("playground")

# Everything the page loads comes from the gateway itself; it may only talk to the gateway.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


class _Assets(StaticFiles):
    async def get_response(self, path: str, scope) -> Response:  # type: ignore[override]
        response = await super().get_response(path, scope)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-cache")  # revalidate (ETag) so an upgrade shows at once
        return response


async def _index(request: Request) -> Response:
    return FileResponse(ASSETS / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


def playground_routes() -> list[BaseRoute]:
    """``GET /`` (the page) and ``/playground/*`` (its script and stylesheet)."""
    return [
        Route("/", _index, methods=["GET", "HEAD"], name="playground"),
        Mount("/playground", app=_Assets(directory=ASSETS), name="playground_assets"),
    ]
