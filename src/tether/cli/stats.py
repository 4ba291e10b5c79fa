"""``tether stats``: what the routing ledger says about where requests ran."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tether.cli import cli
from tether.cli._io import json_option
from tether.errors import InputError

if TYPE_CHECKING:
    from tether.routing.ledger import LedgerEntry

_LABELS = {"device": "device", "private_cloud": "private cloud", "third_party": "third party"}


def _money(usd: float) -> str:
    sign = "-" if usd < 0 else ""
    usd = abs(usd)
    return sign + (f"${usd:.4f}" if usd < 1 else f"${usd:,.2f}")


def _energy(joules: float) -> str:
    if abs(joules) >= 1e6:
        return f"{joules / 3.6e6:.2f} kWh"
    return f"{joules / 1e3:.2f} kJ" if abs(joules) >= 1e3 else f"{joules:.1f} J"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


@cli.command("stats")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False), default=None,
              help="Ledger file (default: the router config's `ledger`, else $TETHER_LEDGER, else ledger.sqlite "
                   "in the user data dir: the file the router writes).")
@click.option("--since-hours", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Only count requests from the last H hours.")
@click.option("--recent", type=click.IntRange(min=1, max=10_000), default=None, metavar="N",
              help="Also list the N newest requests: when, which feature, where it ran and why.")
@json_option
def stats_cmd(ledger_path: str | None, since_hours: float | None, recent: int | None, as_json: bool) -> None:
    """Show where requests ran, what they cost and the energy used, against sending everything to the cloud."""
    from tether.routing.ledger import Ledger

    if since_hours is not None and not math.isfinite(since_hours):
        raise InputError(f"--since-hours must be a finite number of hours, not {since_hours}")
    since = time.time() - since_hours * 3600 if since_hours is not None else None
    if ledger_path is not None and not _exists(ledger_path):  # a typo, not an empty ledger
        raise InputError(f"no ledger at {ledger_path}")
    from tether.routing.config import RouterConfig

    config = RouterConfig.load()  # its prices price the all-cloud baseline, whichever ledger is read
    if ledger_path is None:
        ledger_path = config.ledger  # read what the router writes
    with Ledger(ledger_path, readonly=True) as ledger:
        st = ledger.stats(config.prices, since=since)
        rows = ledger.entries(recent, since=since) if recent else []
    if as_json:
        data = json.loads(st.model_dump_json())  # a total past a float's range is null, not Infinity (invalid JSON)
        if recent:
            data["recent"] = [e.model_dump(mode="json") for e in rows]
        click.echo(json.dumps(data, indent=2))
        return
    window = f" in the last {since_hours:g} h" if since_hours is not None else ""
    skipped = (f"skipped {st.unreadable} unreadable ledger row{'s' if st.unreadable != 1 else ''} "
               "(a value no request could have: damage, or another tool)") if st.unreadable else ""
    if not st.requests:
        click.echo((f"no requests{window}" if window else "no requests yet") + (f"; {skipped}" if skipped else ""))
        return
    shares = ", ".join(f"{_LABELS.get(t, t)} {s.share:.1%} ({s.requests})" for t, s in st.by_tier.items())
    saved = "n/a" if st.saved_share is None else f"{st.saved_share:.1%}"
    click.echo(f"{st.requests} requests{window}, {st.device_share:.1%} on the device\n"
               f"  by tier: {shares}\n"
               f"  cost:    {_money(st.cost_usd)} vs {_money(st.all_cloud_cost_usd)} all-cloud "
               f"(saved {_money(st.saved_usd)}, {saved}) over {st.tokens} tokens\n"
               f"  energy:  {_energy(st.energy_j)} vs {_energy(st.all_cloud_energy_j)} all-cloud\n"
               f"  degraded {st.degraded}, escalated {st.escalated}\n"
               "  latency p50/p95 ms: "
               + ", ".join(f"{_LABELS.get(t, t)} {_ms(s.p50_latency_ms)}/{_ms(s.p95_latency_ms)}"
                           for t, s in st.by_tier.items() if s.requests)
               + (f"\n  {skipped}" if skipped else ""))
    if rows:
        click.echo(f"\n{len(rows)} most recent:\n" + "\n".join(_row(e) for e in rows))


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except OSError as exc:  # a name too long for the file system, a parent it may not search
        raise InputError(f"cannot use --ledger {path}: {exc.strerror or exc}") from None


def _row(e: LedgerEntry) -> str:
    """One request on one line: local time, feature, tier, tokens, latency, cost, then why."""
    try:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts))
    except (OverflowError, OSError, ValueError):  # a time this platform's time_t cannot hold (2038 on 32 bits)
        when = f"{f'ts {e.ts:.0f}':<19}"
    flags = [f for f, on in (("escalated", e.escalated), ("degraded", e.degraded)) if on]
    if e.consent:
        flags.append(f"consent {e.consent}")
    why = e.reason + (f" (score {e.score:.2f})" if e.score is not None else "") + "".join(f", {f}" for f in flags)
    return (f"  {when}  {e.feature[:16]:<16} {_LABELS.get(e.tier, e.tier):<13} {e.tokens:>6} tok "
            f"{e.latency_ms:>7.0f} ms {_money(e.cost_usd):>9}  {why}")
