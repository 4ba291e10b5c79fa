"""A stand-in OpenAI-compatible provider for the third-party tier's tests.

It answers deterministically ("echo: " + the last user message), records what
it received so tests can show exactly what left the device, and fails on
demand. Run it as ``python tests/routing/provider_server.py --port 0``.

Fault sequence entries (``POST /_faults`` or ``--fail``), one per chat request:
    200            answer normally
    4xx/5xx        that status with an OpenAI-style error body (``--fail-mode text``: plain text)
    "invalid_json" 200 with a body that is not JSON
    "cut"          stream: send one content delta, then drop the connection
    "cut_early"    stream: send only the role delta, then drop the connection
    "stream_endless_line" / "stream_drip_line"
                   stream: one line that never ends, sent fast (17 MiB) or a byte a tenth of a second
    "drip_error"   503 whose plain-text body drips a byte a tenth of a second (30 s in all)
    "big_error"    500 with a 20 MiB plain-text body
    "stream_deep_json"
                   stream: one event nested 100,000 arrays deep (past any JSON parser's recursion limit)
    "html"         200 with an HTML page (a captive portal, a web site at the base URL), streamed or not
    "lone_surrogates"
                   an answer whose JSON escapes hold half an emoji ("\\ud83d"); streamed, an emoji whose two
                   halves come in two events, then a lone half ("lone_surrogate_error": a 400 whose message does)
    {"content": TEXT, "finish_reason": "stop"}
                   answer TEXT instead of the echo (streamed in pieces of 5 characters), e.g. a
                   provider that ignores ``response_format``; finish_reason defaults to "stop"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route


def logprob_at(i: int) -> float:
    """Token i's logprob; tests derive the expected mean from the same rule."""
    return -(i + 1) / 10


def make_app(sequence: list[Any] | None = None, retry_after: float | None = None, delay: float = 0.0,
             fail_mode: str = "json") -> Starlette:
    state: dict[str, Any] = {"captured": [], "sequence": list(sequence or []), "retry_after": retry_after,
                             "delay": delay, "fail_mode": fail_mode}

    def record(request: Request, body: Any) -> None:
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        auth = request.headers.get("authorization")
        state["captured"].append({
            "path": request.url.path,
            "headers": headers,
            # whether a key was sent and how, never the key itself
            "auth": {"present": auth is not None, "scheme": auth.split(" ", 1)[0] if auth else None},
            "body": body,
        })

    def error(status: int) -> Response:
        headers = {}
        if state["retry_after"] is not None:
            headers["Retry-After"] = str(state["retry_after"])
        message = f"injected failure {status}"
        if state["fail_mode"] == "text":
            return PlainTextResponse(message, status_code=status, headers=headers)
        return JSONResponse({"error": {"message": message, "type": "injected", "code": status}},
                            status_code=status, headers=headers)

    def answer(body: dict[str, Any]) -> tuple[list[str], str, int]:
        messages = body.get("messages") or []
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        words = ("echo: " + last_user).split()
        max_tokens = int(body.get("max_tokens") or 1_000_000)
        finish = "length" if len(words) > max_tokens else "stop"
        words = words[:max_tokens]
        tokens = [w if i == 0 else " " + w for i, w in enumerate(words)]
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        return tokens, finish, prompt_tokens

    async def chat(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            record(request, None)
            return JSONResponse({"error": {"message": "request body is not JSON"}}, status_code=400)
        record(request, body)
        fault = state["sequence"].pop(0) if state["sequence"] else 200
        if state["delay"]:
            await asyncio.sleep(state["delay"])
        if isinstance(fault, int) and fault != 200:
            return error(fault)
        if fault == "invalid_json":
            return Response(b'{"choices": [ not json', media_type="application/json")
        if fault == "html":
            return Response(b"<html><body><h1>Sign in to the network</h1></body></html>", media_type="text/html")
        if fault == "lone_surrogate_error":
            return Response(b'{"error": {"message": "bad input \\udc80 here"}}', status_code=400,
                            media_type="application/json")
        if fault == "lone_surrogates":
            if body.get("stream"):
                events = ['{"choices": [{"index": 0, "delta": {"content": "smile \\ud83d"}}]}',
                          '{"choices": [{"index": 0, "delta": {"content": "\\ude00 half \\ud83d"}}]}',
                          '{"choices": [{"index": 0, "delta": {"content": " end"}, "finish_reason": "stop"}]}']
                return StreamingResponse(iter([f"data: {e}\n\n" for e in events] + ["data: [DONE]\n\n"]),
                                         media_type="text/event-stream")
            return Response(b'{"choices": [{"index": 0, "message": {"content": "half \\ud83d here"}, '
                            b'"finish_reason": "stop"}]}', media_type="application/json")
        if fault == "bad_gzip":  # says gzip, is not: the client cannot decode the body
            return Response(b"this is not gzip at all", media_type="application/json",
                            headers={"content-encoding": "gzip"})
        if fault == "oversized":  # 20 MiB of padding around a valid answer
            return Response(b'{"pad": "' + b"x" * (20 * 2**20) + b'"}', media_type="application/json")
        if fault == "drip":  # one byte a tenth of a second: never a read timeout, never a whole answer

            async def drip():
                for b in b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "slow"}}]}':
                    await asyncio.sleep(0.1)
                    yield bytes([b])

            return StreamingResponse(drip(), media_type="application/json")
        if fault in ("drip_error", "big_error"):  # an error whose body is slow or huge (streamed or not)
            drip = fault == "drip_error"

            async def error_body():
                for _ in range(300 if drip else 20):
                    if drip:
                        await asyncio.sleep(0.1)
                    yield b"x" if drip else b"x" * 2**20

            return StreamingResponse(error_body(), status_code=503 if drip else 500, media_type="text/plain")
        if fault in ("content_list", "huge_usage", "negative_usage"):  # valid JSON, wrong shapes or values
            content: Any = [{"type": "text", "text": "hi"}] if fault == "content_list" else "hi"
            usage = {"huge_usage": 1e30, "negative_usage": -5}.get(fault, 1)
            return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": usage, "completion_tokens": usage}})
        if fault in ("stream_endless_line", "stream_drip_line") and body.get("stream"):
            # a line that never ends: 17 MiB at full speed, or one byte a tenth of a second
            fast = fault == "stream_endless_line"

            async def endless():
                yield b'data: {"pad": "'
                for _ in range(17 * 16 if fast else 600):
                    if not fast:
                        await asyncio.sleep(0.1)
                    yield b"x" * (65536 if fast else 1)

            return StreamingResponse(endless(), media_type="text/event-stream")
        if fault == "stream_deep_json" and body.get("stream"):
            deep = "[" * 100_000 + "]" * 100_000
            return StreamingResponse(iter([f"data: {deep}\n\n", "data: [DONE]\n\n"]), media_type="text/event-stream")
        if fault in ("stream_choices_str", "stream_content_number") and body.get("stream"):
            bad = ["x"] if fault == "stream_choices_str" else [{"index": 0, "delta": {"content": 7}}]
            return StreamingResponse(iter([f"data: {json.dumps({'choices': bad})}\n\n", "data: [DONE]\n\n"]),
                                     media_type="text/event-stream")
        tokens, finish, prompt_tokens = answer(body)
        if isinstance(fault, dict) and isinstance(fault.get("content"), str):  # a scripted answer
            text = fault["content"]
            tokens = [text[i:i + 5] for i in range(0, len(text), 5)]
            finish = fault.get("finish_reason") or "stop"
        model = body.get("model") or "fake-model"
        if body.get("stream"):
            usage = None
            if (body.get("stream_options") or {}).get("include_usage"):  # OpenAI's last chunk, choices empty
                usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                         "total_tokens": prompt_tokens + len(tokens)}
            return StreamingResponse(sse(tokens, finish, model, fault, usage), media_type="text/event-stream")
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": "".join(tokens)},
                                  "finish_reason": finish}
        if body.get("logprobs"):
            choice["logprobs"] = {"content": [{"token": t, "logprob": logprob_at(i), "top_logprobs": []}
                                              for i, t in enumerate(tokens)]}
        return JSONResponse({"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
                             "choices": [choice],
                             "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens),
                                       "total_tokens": prompt_tokens + len(tokens)}})

    async def sse(tokens: list[str], finish: str, model: str, fault: Any, usage: dict[str, int] | None = None):
        def event(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            return f"data: {json.dumps(chunk)}\n\n"

        yield event({"role": "assistant", "content": ""})
        if fault == "cut_early":
            await asyncio.sleep(0.05)
            raise ConnectionAbortedError("injected: stream cut before content")
        for i, token in enumerate(tokens):
            yield event({"content": token})
            if fault == "cut" and i == 0:
                await asyncio.sleep(0.05)
                raise ConnectionAbortedError("injected: stream cut after first delta")
        yield event({}, finish)
        if usage is not None:
            yield f"data: {json.dumps({'id': 'chatcmpl-fake', 'object': 'chat.completion.chunk', 'model': model, 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    async def captured(request: Request) -> Response:
        return JSONResponse(state["captured"])

    async def reset(request: Request) -> Response:
        state.update(captured=[], sequence=[], retry_after=None, delay=0.0, fail_mode=fail_mode)
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> Response:
        spec = await request.json()
        state["sequence"] = list(spec.get("sequence") or [])
        state["retry_after"] = spec.get("retry_after")
        state["delay"] = float(spec.get("delay") or 0.0)
        if spec.get("fail_mode"):
            state["fail_mode"] = spec["fail_mode"]
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/_captured", captured, methods=["GET"]),
        Route("/_reset", reset, methods=["POST"]),
        Route("/_faults", faults, methods=["POST"]),
    ])


def parse_sequence(text: str) -> list[Any]:
    return [int(x) if x.strip().isdigit() else x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fail", default="", help="comma-separated fault sequence, e.g. 429,429")
    parser.add_argument("--fail-mode", choices=["json", "text"], default="json",
                        help="error bodies as OpenAI-style JSON or plain text")
    parser.add_argument("--retry-after", type=float, default=None)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)

    from tether.cloud.serving import bind, run

    app = make_app(parse_sequence(args.fail), args.retry_after, args.delay, args.fail_mode)
    sock, _ = bind(args.host, args.port)
    run(app, host=args.host, port=args.port, name="provider", sock=sock)


if __name__ == "__main__":
    sys.exit(main())
