"""Compliance keywords and quiet hours: pure policies, no I/O."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from domain.errors import QuietHoursInvalidError
from domain.quiet_hours import QuietHours, is_quiet
from domain.sms_keywords import Keyword, keyword

OPT_OUT = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "REMOVE", "REVOKE"]


@pytest.mark.parametrize("word", OPT_OUT)
def test_every_opt_out_keyword_is_recognised_in_any_case_with_surrounding_whitespace_and_punctuation(word):
    for written in (word, word.lower(), word.title(), f"  {word}  ", f"{word}!", f'"{word}."', f"\n{word.lower()}?\t"):
        assert keyword(written) is Keyword.OPT_OUT, written


@pytest.mark.parametrize("word", ["START", "UNSTOP", "YES"])
def test_start_unstop_and_yes_opt_back_in(word):
    assert keyword(word) is Keyword.OPT_IN
    assert keyword(f" {word.lower()}. ") is Keyword.OPT_IN


def test_help_asks_for_help():
    assert keyword("help") is Keyword.HELP
    assert keyword("HELP?") is Keyword.HELP


@pytest.mark.parametrize("text", ["please stop", "stop it now", "STOP STOP", "yes please", "helpful", "S T O P",
                                  "", "   ", "!!!", "stopp", "optout please", None])
def test_a_keyword_inside_a_sentence_or_a_near_miss_is_an_ordinary_message(text):
    assert keyword(text) is None


def test_quiet_hours_across_midnight_cover_the_night_but_not_the_day():
    night = QuietHours.parse("21:00", "08:00")
    assert night.contains(time(21, 0)) and night.contains(time(23, 59)) and night.contains(time(0, 0))
    assert night.contains(time(7, 59))
    assert not night.contains(time(8, 0)) and not night.contains(time(12, 0)) and not night.contains(time(20, 59))


def test_quiet_hours_within_one_day_and_an_empty_window():
    lunch = QuietHours.parse("12:00", "13:30")
    assert lunch.contains(time(12, 0)) and lunch.contains(time(13, 29))
    assert not lunch.contains(time(13, 30)) and not lunch.contains(time(11, 59))
    assert not QuietHours.parse("09:00", "09:00").contains(time(9, 0))


def test_quiet_hours_are_read_in_the_contacts_own_time_zone():
    night = QuietHours.parse("21:00", "08:00")
    noon_utc = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert not is_quiet(noon_utc, "Europe/London", night)
    assert is_quiet(noon_utc, "Pacific/Auckland", night)  # 01:00 the next day there
    assert is_quiet(datetime(2026, 11, 25, 15, 30, tzinfo=timezone.utc), "America/Los_Angeles", night)  # 07:30
    assert not is_quiet(noon_utc, "Europe/London", None)


@pytest.mark.parametrize("value", ["24:00", "9:00", "09:60", "0900", "", "noon"])
def test_quiet_hours_refuse_anything_but_hh_mm(value):
    with pytest.raises(QuietHoursInvalidError):
        QuietHours.parse(value, "08:00")
