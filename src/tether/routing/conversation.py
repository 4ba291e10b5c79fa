"""A multi-turn conversation as one routed prompt.

The router decides per request, and a turn may run on a different tier than the
one before, so no tier keeps the conversation: each turn carries its history in
its prompt (and so through the privacy guard). Old turns are dropped first when
the history grows past ``max_chars``, so a long chat degrades instead of failing;
a caller whose prompt still does not fit the model's window drops more
(``drop_oldest``): 6,000 characters of Chinese are ~11,000 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

MAX_HISTORY_CHARS = 6000


def conversation_prompt(history: Sequence[tuple[str, str]], prompt: str) -> str:
    """``prompt`` with the earlier ``(role, text)`` turns before it, or ``prompt`` alone."""
    if not history:
        return prompt
    lines = "\n".join(f"{role}: {text}" for role, text in history)
    return f"Conversation so far:\n{lines}\n\nuser: {prompt}"


@dataclass
class Conversation:
    max_chars: int = MAX_HISTORY_CHARS
    turns: list[tuple[str, str]] = field(default_factory=list)
    dropped: int = 0  # exchanges (a user turn and its answer) let go to make room
    personal: str | None = None  # the last turn's question when it was answered from the user's files

    def prompt(self, text: str) -> str:
        while self.turns and sum(len(t) for _, t in self.turns) > self.max_chars:
            self.drop_oldest()
        return conversation_prompt(self.turns, text)

    def drop_oldest(self) -> bool:
        """Let the oldest exchange go; False when there is none left to drop."""
        if not self.turns:
            return False
        del self.turns[:2]
        self.dropped += 1
        return True

    def add(self, user: str, assistant: str) -> None:
        self.turns += [("user", user), ("assistant", assistant)]

    def reset(self) -> None:
        self.turns.clear()
        self.dropped = 0
        self.personal = None
