"""``tether ask``: answer from the top chunks retrieved on the device.

Retrieved text is personal. Before any tier off the device could see it, it
goes through ``PrivacyGuard.prepare``; ``context_for`` returns exactly that
payload. Off-device tiers do not exist yet, so the answer is always generated
locally, but from the payload the chosen tier would receive.
"""

from __future__ import annotations

from pydantic import BaseModel

from tether.models import catalog
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
    tier: Tier
    stayed_on_device: bool
    sources: list[Hit]
    context: str


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


def ask(question: str, hits: list[Hit], *, model: str = catalog.DEFAULT_MODEL, tier: Tier = "device",
        guard: PrivacyGuard | None = None, max_tokens: int = 200) -> Answer:
    from tether.models.engine import Sampling
    from tether.session import Session

    if tier == "device":
        context, stayed = build_context(hits), True
    else:
        outbound = context_for(hits, tier, guard=guard)
        stayed = outbound.payload is None
        context = build_context(hits) if stayed else outbound.payload  # type: ignore[assignment]
        tier = "device" if stayed else tier
    session = Session(instructions=INSTRUCTIONS, model=model)
    prompt = f"Excerpts:\n{context}\n\nQuestion: {question}" if context else f"(no excerpts found)\n\nQuestion: {question}"
    text = session.respond(prompt, sampling=Sampling.greedy(max_tokens=max_tokens)).text.strip()
    return Answer(question=question, answer=text, tier=tier, stayed_on_device=stayed, sources=hits, context=context)
