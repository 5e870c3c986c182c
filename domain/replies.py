"""What a customer's answer to a reminder means: a confirmation, a request to reschedule, or unclear.

SMS keywords (STOP, START, HELP and their synonyms) are not answers: the SMS channel handles them.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class Verdict(StrEnum):
    CONFIRM = "confirm"
    RESCHEDULE = "reschedule"
    UNCLEAR = "unclear"


CONFIRMING = frozenset({
    "c", "confirm", "confirmed", "confirming", "y", "yes", "yeah", "yep", "yup", "ok", "okay", "k", "sure", "si",
    "oui", "ja", "👍", "👌", "✅", "✔", "☑", "🙂", "😊",
})
RESCHEDULING = frozenset({"r", "reschedule", "rebook", "resched"})
COURTESY = frozenset({"please", "pls", "thanks", "thank", "you", "thx", "ty", "i", "will", "be", "there", "see",
                      "then", "great", "perfect", "cheers"})
KEYWORDS = frozenset({
    "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "start", "unstop", "yes start", "help", "info",
})


def normalise(body: str) -> str:
    """Lower case, punctuation dropped, emoji split into words of their own (skin tones removed)."""
    kept = []
    for char in unicodedata.normalize("NFKC", body).casefold():
        category = unicodedata.category(char)
        if 0x1F3FB <= ord(char) <= 0x1F3FF or char == "\ufe0f":
            continue  # skin-tone modifiers and the emoji presentation selector
        if category.startswith("P") or char == "'":
            continue
        if category == "So":
            kept.append(f" {char} ")
        else:
            kept.append(" " if category.startswith("Z") or char in "\t\r\n" else char)
    return " ".join("".join(kept).split())


def classify(body: str) -> Verdict | None:
    """The meaning of a reply to a reminder; None for SMS keywords (not an answer)."""
    text = normalise(body) if isinstance(body, str) else ""
    if text in KEYWORDS:
        return None
    words = text.split()
    meaningful = [w for w in words if w not in COURTESY]
    if meaningful and all(w in CONFIRMING for w in meaningful):
        return Verdict.CONFIRM
    if meaningful and meaningful[0] in RESCHEDULING and all(w in RESCHEDULING for w in meaningful):
        return Verdict.RESCHEDULE
    return Verdict.UNCLEAR
