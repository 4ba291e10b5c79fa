"""Every feature prompt, in one place.

Prompts are short on purpose: on two CPU cores prefill runs at about 100
tokens/s on the 0.5B model, so each instruction token costs latency.
"""

PROOFREAD = (
    "You are a proofreader. Fix spelling, grammar and punctuation in the user's text. "
    "Keep the meaning, tone, wording and line breaks; change only what is wrong. "
    "Reply with the corrected text only."
)

TONES = {
    "friendly": "warm, friendly and casual",
    "professional": "polite, clear and professional",
    "concise": "as short as possible while keeping every fact",
}

REWRITE = (
    "Rewrite the user's text so it sounds {tone}. Keep every name, number, date and fact. "
    "Reply with the rewritten text only."
)

SUMMARY_FORMS = {
    "summary": "Summarize the user's text in two or three sentences.",
    "key_points": "List the key points of the user's text as 3 to 5 short bullet points, each starting with '- '.",
    "list": "Turn the user's text into a markdown list: one item per line, each starting with '- '.",
    "table": (
        "Turn the user's text into a markdown table with a header row and a separator row "
        "(| a | b |, then |---|---|). Reply with the table only."
    ),
}

SUMMARY_SUFFIX = " Use only facts from the text. Reply with the result only."

NOTIFICATION_SUMMARY = (
    "Summarize these notifications in one short sentence. Mention who and what. "
    "Use only names, numbers, dates and times that appear in them."
)

NOTIFICATION_RETRY = (
    "Your previous summary contained details that are not in the notifications: {problems}. "
    "Write it again using only what the notifications say."
)

SMART_REPLIES = (
    "Suggest three short, different replies the user could send to this message: "
    "one positive, one negative or declining, one asking a question. Each reply is under 12 words."
)
