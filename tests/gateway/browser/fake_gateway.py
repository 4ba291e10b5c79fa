"""A model-free stand-in for the gateway's API, serving the real playground.

It speaks the gateway's contract (the ``tether`` routing block and ``X-Tether-*``
headers, SSE chat chunks, consent refusal as a 403 ``consent_required``, the
ledger's recent decisions) and uses the real privacy guard for
``/v1/privacy/scan``, so the page's own logic (consent dialog, preview,
streaming, recent list) is tested quickly without loading a language model.
Every request it receives is recorded in ``app.state.seen``.
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tether.gateway.playground import playground_routes

TIERS = {"auto": "device", "device": "device", "private-cloud": "private_cloud", "third-party": "third_party"}


def build() -> Starlette:
    decisions: list[dict] = []
    seen: list[dict] = []

    def decide(request: Request, model: str, feature: str) -> tuple[dict | None, JSONResponse | None]:
        tier = TIERS.get(model or "auto", "device")
        if tier == "third_party" and request.headers.get("x-tether-consent") != "yes":
            return None, JSONResponse({"error": {"message": "third_party: no consent given", "type": "permission_error",
                                                 "code": "consent_required", "param": None}}, status_code=403)
        rule = "requested" if model not in (None, "", "auto") else "difficulty"
        info = {"tier": tier, "rule": rule, "reason": "the fake gateway decided", "values": {"p_device_ok": 0.8125},
                "degraded": False, "notes": []}
        decisions.append({"ts": time.time(), "feature": feature, "tier": tier, "reason": rule, "latency_ms": 12.0,
                          "degraded": False, "escalated": False,
                          "consent": "given" if tier == "third_party" else None})
        return info, None

    def headers(info: dict) -> dict[str, str]:
        return {"X-Tether-Tier": info["tier"], "X-Tether-Rule": info["rule"], "X-Tether-Reason": info["reason"]}

    async def record(request: Request) -> dict:
        body = await request.json()
        seen.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        return body

    async def chat(request: Request):
        body = await record(request)
        info, refusal = decide(request, body.get("model"), "chat")
        if refusal:
            return refusal

        async def stream():
            words = ["Streamed ", "answer ", "from ", "the ", "fake ", "gateway."]
            for i, w in enumerate(words):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "fake",
                         "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                if i == 0:
                    chunk["tether"] = info
                yield f"data: {json.dumps(chunk)}\n\n"
                await asyncio.sleep(0.05)
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers(info))

    def feature(name: str, result):
        async def endpoint(request: Request):
            body = await record(request)
            info, _ = decide(request, "device", name)  # features run on the device
            info["rule"], info["reason"] = "feature", "features run on the device"
            return JSONResponse({**result(body), "tether": info}, headers=headers(info))
        return endpoint

    async def scan(request: Request):
        from tether.privacy.guard import PrivacyGuard

        body = await request.json()
        report = PrivacyGuard.from_file().scan(body["text"])
        return JSONResponse(report.model_dump(mode="json"))

    async def recent(request: Request):
        return JSONResponse({"decisions": decisions[-20:]})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/writing/summarize", feature("summarize", lambda b: {"form": b.get("form"), "text": "A fake summary."}),
              methods=["POST"]),
        Route("/v1/writing/rewrite", feature("rewrite", lambda b: {"tone": b["tone"], "text": f"A {b['tone']} rewrite."}),
              methods=["POST"]),
        Route("/v1/privacy/scan", scan, methods=["POST"]),
        Route("/v1/route/recent", recent),
        *playground_routes(),
    ])
    app.state.seen = seen
    return app
