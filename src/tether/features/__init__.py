"""User-facing features. Each is a library function returning a pydantic result."""

from tether.features.genmoji import EmojiResult, create_emoji
from tether.features.notifications import (
    Notification,
    NotificationDigest,
    Stack,
    load_notifications,
    summarize_notifications,
)
from tether.features.replies import SmartReplies, smart_replies
from tether.features.writing import ProofreadResult, RewriteResult, SummaryResult, proofread, rewrite, summarize

__all__ = [
    "EmojiResult",
    "Notification",
    "NotificationDigest",
    "ProofreadResult",
    "RewriteResult",
    "SmartReplies",
    "Stack",
    "SummaryResult",
    "create_emoji",
    "load_notifications",
    "proofread",
    "rewrite",
    "smart_replies",
    "summarize",
    "summarize_notifications",
]
