"""``tether privacy scan``: show exactly what would leave the device, per tier."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tether.cli import cli
from tether.cli._io import read_text, text_option

if TYPE_CHECKING:  # presidio and spaCy take seconds to import: only `privacy scan` pays for them
    from tether.privacy.guard import Outbound, ScanReport

_TIER_TITLE = {"device": "device", "private_cloud": "private cloud", "third_party": "third party"}


@cli.group("privacy")
def privacy() -> None:
    """Inspect what the privacy guard sends to each tier."""


def _tier_block(t: Outbound) -> list[str]:
    title = _TIER_TITLE[t.tier]
    consent = ", after consent" if t.consent_required else ""
    if t.tier == "device":
        head = f"── {title}: stays on the device"
    elif t.must_stay_on_device:
        head = f"── {title}: MUST STAY ON DEVICE ({', '.join(t.stay_reasons)} may not leave)"
    else:
        replaced = sum(e.count for e in t.entities if e.action == "pseudonymize")
        head = f"── {title}: would send {len(t.payload or ''):,} characters{consent}, {replaced} value(s) pseudonymized"
    lines = [head]
    if t.payload is not None:
        lines.append(t.payload)
    return lines


def render_scan(report: ScanReport) -> str:
    lines = [f"{len(report.entities)} entit{'y' if len(report.entities) == 1 else 'ies'} found "
             f"in {report.chars:,} characters"]
    width = max((len(s.entity_type) for s in report.entities), default=0)
    for s in report.entities:
        value = s.text if len(s.text) <= 60 else s.text[:57] + "…"
        lines.append(f"  {s.entity_type:<{width}}  {s.start}-{s.end}  {s.score:.2f}  {value!r}")
    for t in report.tiers:
        lines.append("")
        lines += _tier_block(t)
    return "\n".join(lines)


@privacy.command("scan")
@click.argument("file", default="-")
@text_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Privacy config (.toml, .yaml, .json). Default: $TETHER_PRIVACY_CONFIG, then "
                   "~/.config/tether/privacy.toml, then the built-in policy.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def scan_cmd(file: str, inline: str | None, config_path: str | None, as_json: bool) -> None:
    """Show, for each tier, the text that would leave the device (FILE or - for stdin)."""
    from tether.privacy.guard import PrivacyGuard

    guard = PrivacyGuard.from_file(config_path)  # an invalid config fails before reading input
    text = read_text(file, inline)
    report = guard.scan(text)
    click.echo(report.model_dump_json(indent=2) if as_json else render_scan(report))
