"""``tether demo``: every feature on bundled sample data, with timings."""

from __future__ import annotations

import json
import socket
import tempfile
import time
from importlib import resources
from pathlib import Path

import click

from tether.cli import cli
from tether.cli._io import load_model, load_router, model_option
from tether.cli.features import render_digest
from tether.errors import InvalidOutputError
from tether.features import calculator, genmoji, notifications, replies, writing
from tether.models.engine import Sampling
from tether.session import Session
from tether.tools import Tool, tool


def _notifications_from(items: list[notifications.Notification]) -> Tool:
    @tool
    def notifications_from(person: str) -> str:
        """The user's recent notifications from one person, newest last."""
        hits = [n.body for n in items if person.strip() and person.lower() in (n.sender or "").lower()]
        return " | ".join(hits) or "no notifications from them"

    return notifications_from


def sample(name: str) -> str:
    return resources.files("tether.data").joinpath(name).read_text(encoding="utf-8")


@cli.command("demo")
@model_option
@click.option("--json", "as_json", is_flag=True, help="Print all results as one JSON object.")
@click.option("--serve", is_flag=True, help="Then start the gateway and web playground (as `tether serve`).")
@click.option("--port", default=8400, show_default=True, type=click.IntRange(0, 65535),
              help="With --serve: the gateway's port on 127.0.0.1 (0 picks a free one).")
def demo_cmd(model: str, as_json: bool, serve: bool, port: int) -> None:
    """Run every feature on bundled sample data and print results with timings."""
    sock = _bind(port) if serve else None  # a taken port fails now, not after the demo
    t0 = time.perf_counter()
    engine = load_model(model)
    load_s = time.perf_counter() - t0
    results: dict[str, object] = {}

    def section(title: str, seconds: float, body: str) -> None:
        if not as_json:
            click.secho(f"\n── {title}  ({seconds:.1f} s)", bold=True)
            click.echo(body)

    if not as_json:
        click.echo(f"model {engine.name} ({engine.path.name}), {engine.n_threads} threads, loaded in {load_s:.1f} s")

    items = notifications.parse_notifications(json.loads(sample("notifications.json")))
    digest = notifications.summarize_notifications(items, model=model)
    results["notifications"] = digest.model_dump(mode="json")
    section(f"Notification summaries: {len(items)} notifications → {len(digest.stacks)} stacks", digest.duration_s,
            render_digest(digest))

    draft = sample("draft.txt")
    pr = writing.proofread(draft, model=model)
    results["proofread"] = pr.model_dump(mode="json")
    undone = "".join(f"\n  not applied (rewording): {e.original!r} → {e.replacement!r}" for e in pr.undone)
    undone += "".join(f"\n  still looks wrong: {f.text!r} ({f.why})" for f in pr.flagged)
    section(f"Proofread ({len(pr.edits)} edits)", pr.duration_s,
            pr.corrected.strip() + "\n" + "\n".join(f"  {e.original!r} → {e.replacement!r}" for e in pr.edits) + undone)

    for tone in ("friendly", "professional", "concise"):
        rw = writing.rewrite(draft, tone, model=model)
        results[f"rewrite_{tone}"] = rw.model_dump(mode="json")
        section(f"Rewrite: {tone}", rw.duration_s, rw.text)

    article = sample("article.txt")
    for form in ("summary", "key_points", "table"):
        t = time.perf_counter()
        try:
            sm = writing.summarize(article, form, model=model)
        except InvalidOutputError as exc:  # a feature may refuse bad output; the demo goes on
            results[f"summarize_{form}"] = {"error": str(exc)}
            section(f"Summarize: {form}", time.perf_counter() - t, f"(refused: {exc})")
            continue
        results[f"summarize_{form}"] = sm.model_dump(mode="json")
        section(f"Summarize: {form}", sm.duration_s, sm.text)

    rp = replies.smart_replies(sample("email.txt"), model=model)
    results["replies"] = rp.model_dump(mode="json")
    section("Smart replies" + (" (with fallback)" if rp.fallback else ""), rp.duration_s,
            "\n".join(f"{i}. {r}" for i, r in enumerate(rp.replies, 1)))

    em = genmoji.create_emoji("a cat wearing sunglasses", model=model, png=False)
    results["emoji"] = em.model_dump(mode="json")
    section("Emoji", em.duration_s, f"a cat wearing sunglasses → {em.text}  ({em.name})")

    question = "What time is dinner with Alice tonight?"
    t = time.perf_counter()
    answer = Session(model=model, tools=[_notifications_from(items)], sampling=Sampling.greedy(60),
                     instructions="You are the user's assistant on their phone. Be brief.").respond(question)
    calls = [{"name": c.name, "arguments": c.arguments, "output": c.output} for c in answer.tool_calls]
    results["assistant"] = {"question": question, "answer": answer.text, "tool_calls": calls}
    section("Assistant with a tool", time.perf_counter() - t,
            "\n".join([f"{question}", *(f"  → {c['name']}({json.dumps(c['arguments'])})" for c in calls),
                       answer.text.strip()]))

    t = time.perf_counter()
    calc = calculator.calculate("What is 17 times 23?")
    answer_text = calc.text if calc is not None else "(not recognized as a sum)"
    results["calculator"] = {"question": "What is 17 times 23?", "answer": answer_text}
    section("Assistant: a sum, worked out without the model", time.perf_counter() - t,
            f"What is 17 times 23? → {answer_text}  (tether chat and the gateway answer a sum this way; "
            "qwen2.5-0.5b says 411)")

    t = time.perf_counter()
    results["privacy"], body = _privacy_preview()
    section("Privacy preview: what would leave the device", time.perf_counter() - t, body)

    t = time.perf_counter()
    results["search"], body = _search_and_ask(model)
    section("On-device search over personal files, then ask", time.perf_counter() - t, body)

    total = time.perf_counter() - t0
    where = "on the device" if results["search"]["tier"] == "device" else "on the device, the question on " + \
        results["search"]["tier"]
    if as_json:
        click.echo(json.dumps({"model": engine.name, "total_s": total, "results": results}, indent=2))
    else:
        click.secho(f"\nall features ran {where} in {total:.1f} s", bold=True)
    if sock is not None:
        _serve(model, sock, quiet=as_json)


def _privacy_preview() -> tuple[dict[str, object], str]:
    """The landlord's mail as the private cloud and a third party would get it, and a secret that never leaves."""
    from tether.privacy.guard import PrivacyGuard

    guard = PrivacyGuard.from_file()
    mail = sample("personal/landlord.eml").split("\n\n", 1)[1].strip()
    report = guard.scan(mail)
    secret = guard.scan("Deploy with AWS key AKIAIOSFODNN7EXAMPLE before Friday.")
    cloud = secret.tier("private_cloud")
    result = {"text": mail, "scan": report.model_dump(mode="json"),
              "secret_must_stay_on_device": cloud.must_stay_on_device, "secret_reasons": cloud.stay_reasons}
    found = ", ".join(f"{s.entity_type} {s.text!r}" for s in report.entities)
    third = report.tier("third_party")
    body = "\n".join([
        f"found: {found}", "the private cloud would get:", report.tier("private_cloud").payload or "(nothing)",
        "a third party would get the same text, and only after consent" if third.payload else "a third party: nothing",
        f"a note with an AWS key: {'must stay on the device' if cloud.must_stay_on_device else 'may leave'} "
        f"({', '.join(cloud.stay_reasons)})"])
    return result, body


def _search_and_ask(model: str) -> tuple[dict[str, object], str]:
    """Index the bundled mail, calendar and notes into a throw-away index, search it, answer from it."""
    from tether.search import Index
    from tether.search.ask import TOP_K, ask

    question = "When is my dentist appointment?"
    with tempfile.TemporaryDirectory(prefix="tether-demo-") as tmp, \
            resources.as_file(resources.files("tether.data").joinpath("personal")) as folder:
        index = Index.open(Path(tmp) / "index.sqlite")
        try:
            report = index.add([folder])
            hits = index.search(question, k=TOP_K)  # as tether ask searches
        finally:
            index.close()
    answer = ask(question, hits, model=model, max_tokens=60)
    lines = [f"indexed {report.added} files ({report.chunks} chunks) in {report.seconds:.1f} s",
             f"search {question!r}:"]
    lines += [f"  {i}. [{h.kind}] {h.title}  ({Path(h.path).name})" for i, h in enumerate(hits, 1)]
    lines += [answer.answer, f"  ── ran on {answer.tier}: {answer.route}"]
    result = {"indexed": report.added, "chunks": report.chunks, "question": question,
              "hits": [{"kind": h.kind, "title": h.title, "file": Path(h.path).name} for h in hits],
              "answer": answer.answer, "tier": answer.tier, "rule": answer.rule, "route": answer.route}
    return result, "\n".join(lines)


def _bind(port: int) -> socket.socket:
    from tether.cloud.serving import bind

    return bind("127.0.0.1", port)[0]


def _serve(model: str, sock: socket.socket, *, quiet: bool) -> None:
    """``tether serve`` on the socket bound at start, with the model the demo already loaded."""
    from tether.cloud.serving import run, url_of
    from tether.gateway import create_app

    url = url_of(sock)
    if not quiet:
        click.secho(f"\nthe web playground is at {url}/ and the OpenAI-compatible API at {url}/v1 (Ctrl-C stops)",
                    bold=True)
    host, port = sock.getsockname()[:2]
    run(create_app(load_router(model, open_ledger=False)), host=host, port=port,
        name="tether gateway", sock=sock)
