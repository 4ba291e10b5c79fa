"""``tether ask``: answer from the top chunks retrieved on the device.

Retrieved text is personal. The router decides where the question runs; before
any tier off the device sees the excerpts they go through ``PrivacyGuard.prepare``
(``context_for`` returns exactly that payload), and the answer is restored on the
device. The answer carries the router's decision, so the user sees where and why.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tether.privacy.guard import Outbound, PrivacyGuard
from tether.privacy.policy import Tier
from tether.privacy.pseudonymize import PseudonymSession
from tether.search.query import Hit

MAX_CONTEXT_CHARS = 2400
INSTRUCTIONS = ("You answer questions about the user's own mail, calendar and files. Use only the numbered "
                "excerpts. If they do not contain the answer, say you could not find it. Be brief.")


class Answer(BaseModel):
    question: str
    answer: str
    tier: Tier  # where it ran
    stayed_on_device: bool
    sources: list[Hit]
    context: str  # what that tier saw of the excerpts
    route: str = ""  # the router's decision: tier, rule, reason and the values it saw
    rule: str = ""
    degraded: bool = False
    notes: list[str] = []


def build_context(hits: list[Hit], max_chars: int = MAX_CONTEXT_CHARS) -> str:
    parts, used = [], 0
    for n, h in enumerate(hits, 1):
        body = h.text if h.text.startswith(h.title) else f"{h.title}\n{h.text}"
        block = f"[{n}] ({h.kind}) {body.strip()}"
        if used + len(block) > max_chars:
            block = block[: max(0, max_chars - used)]
        if not block:
            break
        parts.append(block)
        used += len(block)
    return "\n\n".join(parts)


def context_for(hits: list[Hit], tier: Tier, *, guard: PrivacyGuard | None = None,
                session: PseudonymSession | None = None) -> Outbound:
    """What ``tier`` would receive of the retrieved text, after the privacy policy."""
    guard = guard or PrivacyGuard.from_file()
    session = session or guard.session()
    return guard.prepare(build_context(hits), tier, session=session)


def ask(question: str, hits: list[Hit], *, model: str | None = None, tier: str = "auto", consent: bool | None = None,
        router: Any = None, max_tokens: int = 200) -> Answer:
    """Answer from the retrieved excerpts; the router decides where, and the answer says why."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import RouteRequest, Router

    if router is None:
        router = Router.from_config(RouterConfig.load(device_model=model))
    context = build_context(hits)
    prompt = f"Excerpts:\n{context}\n\nQuestion: {question}" if context else f"(no excerpts found)\n\nQuestion: {question}"
    out = router.respond(RouteRequest(prompt, instructions=INSTRUCTIONS, kind="auto", kind_text=question, feature="ask",
                                      max_tokens=max_tokens, tier=tier, consent=consent))
    seen = context if out.tier == "device" else (context_for(hits, out.tier, guard=router.guard).payload or "")
    return Answer(question=question, answer=out.text.strip(), tier=out.tier, stayed_on_device=out.tier == "device",
                  sources=hits, context=seen, route=out.decision.explain(), rule=out.decision.rule,
                  degraded=out.degraded, notes=out.notes)
