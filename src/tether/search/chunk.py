"""Split item text into chunks small enough for the embedder (~512 tokens max).

Paragraphs are packed up to ``max_chars``; a longer paragraph is split at
sentence ends, and a run-on with no sentence end is cut hard. A huge file thus
becomes many chunks rather than one unsearchable blob.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_CHARS = 1000
_SENT = re.compile(r"(?<=[.!?])\s+")


def chunks(text: str, max_chars: int = MAX_CHARS) -> Iterator[str]:
    buf = ""
    for piece in _pieces(text, max_chars):
        if buf and len(buf) + len(piece) + 2 > max_chars:
            yield buf
            buf = ""
        buf = f"{buf}\n\n{piece}" if buf else piece
    if buf.strip():
        yield buf


def _pieces(text: str, max_chars: int) -> Iterator[str]:
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= max_chars:
            yield para
            continue
        sent_buf = ""
        for sent in _SENT.split(para):
            at = 0  # walk an offset: slicing off the rest at each cut copied it, quadratic on a long line
            while len(sent) - at > max_chars:  # no sentence end: hard cut, preferably at a space
                cut = sent.rfind(" ", at + max_chars // 2, at + max_chars)
                cut = cut if cut > at else at + max_chars
                if sent_buf:
                    yield sent_buf
                    sent_buf = ""
                yield sent[at:cut]
                at = cut
                while at < len(sent) and sent[at].isspace():
                    at += 1
            sent = sent[at:]
            if sent_buf and len(sent_buf) + len(sent) + 1 > max_chars:
                yield sent_buf
                sent_buf = ""
            sent_buf = f"{sent_buf} {sent}" if sent_buf else sent
        if sent_buf:
            yield sent_buf
