"""SMS compliance keywords as carriers expect them: opt-out, opt-in and HELP, recognised in a whole message."""

from __future__ import annotations

from enum import StrEnum

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "REMOVE",
                           "REVOKE"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP"})
STRIP = " \t\r\n\u00a0.,;:!?¡¿'\"()[]{}<>*_~`-–—…/\\|#@&^%$+="

OPT_OUT_CONFIRMATION = ("You have been unsubscribed and will receive no more messages from us."
                        " Reply START to resubscribe.")
OPT_IN_CONFIRMATION = "You have been resubscribed to messages from us. Reply STOP to unsubscribe, HELP for help."
DEFAULT_HELP_TEXT = "Reply STOP to unsubscribe. Message and data rates may apply."


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def keyword(body: str | None) -> Keyword | None:
    """The keyword a message consists of, if any: case-insensitive, surrounding whitespace and
    punctuation ignored ("stop!", " Opt-Out. "); a keyword inside a sentence ("please stop") is not one."""
    if not isinstance(body, str) or len(body) > 40:
        return None
    word = body.strip(STRIP).upper()
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None
