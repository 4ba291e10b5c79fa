"""Every feature prompt, in one place.

Small models follow a task stated in the user turn, next to the text, much
better than one stated only in the system turn, so each feature has a short
system prompt and a task line placed above the user's text. Prompts are short
on purpose: on two CPU cores prefill runs at about 100 tokens/s on the 0.5B.
"""

WRITER = "You are a careful writing assistant. Keep every name, number, date and fact. Reply with the result only."

PROOFREAD = "Fix the spelling, grammar and punctuation of this text. Keep its meaning, wording and tone; change only what is wrong"

TONES = {
    "friendly": "warm, friendly and casual, like a message to a friend",
    "professional": "formal and professional, like a business email",
    "concise": "as short as possible: one or two short sentences",
}

REWRITE = "Rewrite this text so it sounds {tone}"

SUMMARY_FORMS = {
    "summary": "Summarize this text in at most two short sentences",
    "key_points": "List the 3 to 5 key points of this text as short bullet points, each line starting with '- '",
    "list": "Turn this text into a markdown list: one item per line, each starting with '- '",
    # Two named columns: asked for "a header row", small models put every fact in the header.
    "table": ("Turn the facts in this text into a markdown table with two columns, | Topic | Fact |, "
              "then a |---|---| separator row, then one row per fact"),
}

NOTIFICATION_SUMMARY = (
    "Summarize the notifications in one short sentence: what happened or what is asked, and by whom. "
    "Use only names, numbers, dates and times that appear in the notifications."
)

NOTIFICATION_RETRY = (
    "That summary has problems: {problems}. Write it again in one sentence, using only what the "
    "notifications say and keeping any code or amount."
)

REPLIER = "You help the user answer messages they received. Replies are written as the user, to the sender."

SMART_REPLIES = (
    "I received this message:\n\n{message}\n\n"
    "Write three short text messages I could send back, each under 15 words, as a friend would "
    'write them: in "agree" I say yes, in "decline" I say no and give a short reason, in "ask" I ask '
    "about a detail of the message."
)

EMOJI_DESIGNER = "You design new emoji by combining existing ones. You answer in JSON."

EMOJI = (
    "Design an emoji for: {description}\n\n"
    "Give it a short name. Pick the base: the one main thing, in one or two plain words (an animal, "
    "a face, an object). Pick up to two extras from the description, each one plain word, and where each goes: "
    "eyes (glasses), head (hats, crowns), hand (things held) or beside (anything else). "
    "Pick a background colour.\n"
    'Example: "a frog reading a newspaper" -> name "news frog", base "frog", extras [{{"thing": "newspaper", '
    '"place": "hand"}}], background "green". Use only things the description names.'
)
