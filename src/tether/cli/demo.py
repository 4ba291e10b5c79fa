"""``tether demo``: every feature on bundled sample data, with timings."""

from __future__ import annotations

import json
import time
from importlib import resources

import click

from tether.cli import cli
from tether.cli._io import load_model, model_option
from tether.cli.features import render_digest
from tether.errors import InvalidOutputError
from tether.features import genmoji, notifications, replies, writing
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
def demo_cmd(model: str, as_json: bool) -> None:
    """Run every feature on bundled sample data and print results with timings."""
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
    section(f"Proofread ({len(pr.edits)} edits)", pr.duration_s,
            pr.corrected.strip() + "\n" + "\n".join(f"  {e.original!r} → {e.replacement!r}" for e in pr.edits))

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

    total = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps({"model": engine.name, "total_s": total, "results": results}, indent=2))
    else:
        click.secho(f"\nall features ran on the device in {total:.1f} s", bold=True)
