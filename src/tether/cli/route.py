"""``tether route``: where would this request run, and why (optionally run it)."""

from __future__ import annotations

import json
import math

import click

from tether.cli import cli
from tether.cli._io import json_option, load_router, words_argument
from tether.errors import InputError


@cli.command("route")
@words_argument("prompt")
@click.option("--kind", type=click.Choice(["auto", "chat", "gsm8k", "math", "writing", "feature", "other"]),
              default="auto", show_default=True,
              help="Task type the scorers see (gsm8k or math: word problems; auto: tell math from chat by the text).")
@click.option("--tier", type=click.Choice(["auto", "device", "private_cloud", "third_party"]), default="auto",
              show_default=True)
@click.option("--consent/--no-consent", default=None, help="Allow (or refuse) a third party for this request.")
@click.option("--offline", is_flag=True, help="Decide as if the device were offline.")
@click.option("--low-power", is_flag=True, help="Decide as if the device were in low-power mode.")
@click.option("--busy", is_flag=True, help="Decide as if the device were busy.")
@click.option("--memory-mb", type=click.FloatRange(min=0), default=None,
              help="Decide as if this much memory (MiB) were free [default: what the OS reports].")
@click.option("--run", "run_it", is_flag=True, help="Also run it there and print the answer.")
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1, 8192))
@json_option
def route_cmd(prompt: str, kind: str, tier: str, consent: bool | None, offline: bool, low_power: bool, busy: bool,
              memory_mb: float | None, run_it: bool, max_tokens: int, as_json: bool) -> None:
    """Show the router's decision for PROMPT: the tier, the rule, and the values it saw."""
    from tether.routing import RouteRequest

    if memory_mb is not None and not math.isfinite(memory_mb):
        raise InputError(f"--memory-mb must be a finite number of MiB, not {memory_mb}")
    router = load_router(open_ledger=run_it)  # deciding alone writes no ledger row
    router.state.report(offline=offline, low_power=low_power, busy=busy, memory_available_mb=memory_mb)
    request = RouteRequest(prompt, kind=kind, feature="route", tier=tier, consent=consent, max_tokens=max_tokens)
    if not run_it:
        d = router.decide(request)
        if as_json:
            click.echo(json.dumps({"tier": d.tier, "rule": d.rule, "reason": d.reason, "values": d.values,
                                   "decision_ms": round(d.seconds * 1000, 2)}, indent=2, default=str))
        else:
            click.echo(f"{d.explain()}  ({d.seconds * 1000:.1f} ms)")
        return
    out = router.respond(request)
    if as_json:
        click.echo(json.dumps({"answer": out.text, "tier": out.tier, "rule": out.decision.rule,
                               "route": out.decision.explain(), "degraded": out.degraded, "escalated": out.escalated,
                               "notes": out.notes, "latency_s": round(out.latency, 3)}, indent=2))
        return
    click.echo(out.text.strip())
    click.echo(f"── ran on {out.tier}{' (degraded)' if out.degraded else ''}: {out.decision.explain()}")
    for note in out.notes:
        click.echo(f"   {note}")
