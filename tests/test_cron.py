"""Cron patterns: what parses, what is refused and when patterns fire."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nitro_build.runtime.cron import (
    PatternError,
    PatternExhausted,
    parse_pattern,
    resolve_timezone,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2024, 1, 1, tzinfo=UTC)


def fires(text: str, start: datetime, count: int, tz: ZoneInfo | None = None) -> list:
    pattern = parse_pattern(text)
    moments = []
    moment = start
    for _ in range(count):
        moment = pattern.next_after(moment, tz or UTC)
        # an ambiguous local time never compares equal across zones, so compare UTC
        moments.append(moment.astimezone(UTC))
    return moments


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class TestParsing:
    @pytest.mark.parametrize(
        ("text", "fields"),
        [
            ("* * * * *", "0 * * * * * *"),
            ("*/10 * * * * *", "*/10 * * * * * *"),
            ("0 30 9 * * MON-FRI 2030", "0 30 9 * * 1-5 2030"),
            ("@yearly", "0 0 0 1 1 * *"),
            ("@annually", "0 0 0 1 1 * *"),
            ("@monthly", "0 0 0 1 * * *"),
            ("@weekly", "0 0 0 * * 0 *"),
            ("@daily", "0 0 0 * * * *"),
            ("@MIDNIGHT", "0 0 0 * * * *"),
            ("@hourly", "0 0 * * * * *"),
            ("0 0 * jan-Mar sun", "0 0 0 * 1-3 0 *"),
            ("0 0 * * 7", "0 0 0 * * 0 *"),
            ("0 0 * * FRI-SUN", "0 0 0 * * 5-7 *"),
            ("0 0 ? * ?", "0 0 0 * * * *"),
            ("5/15 1-10/3 L * *", "0 5-59/15 1-10/3 L * * *"),
            ("0 0 1,l * *", "0 0 0 1,L * * *"),
            ("0 0 15w * *", "0 0 0 15W * * *"),
            ("0 0 * * 5L", "0 0 0 * * 5#L *"),
            ("0 0 * * fri#l", "0 0 0 * * 5#L *"),
            ("0 0 * * MON-WED#2", "0 0 0 * * 1#2,2#2,3#2 *"),
            ("0 0 */1 * *", "0 0 0 1-31 * * *"),
            ("00 05 * * *", "0 0 5 * * * *"),
        ],
    )
    def test_accepted_forms(self, text: str, fields: str) -> None:
        pattern = parse_pattern(text)

        names = ("second", "minute", "hour", "day", "month", "weekday", "year")
        assert " ".join(getattr(pattern, name) for name in names) == fields
        assert pattern.text == text

    def test_seconds_are_remembered(self) -> None:
        assert not parse_pattern("* * * * *").has_seconds
        assert parse_pattern("0 * * * * *").has_seconds
        assert parse_pattern("0 * * * * * *").has_seconds

    def test_same_text_same_object(self) -> None:
        assert parse_pattern("*/5 * * * *") is parse_pattern("*/5 * * * *")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                "*/10 * * * * * * *",
                "cron pattern '*/10 * * * * * * *': has 8 fields; use 5 (minute hour "
                "day month weekday), 6 (second first) or 7 (second first, year last)",
            ),
            (
                "61 * * * *",
                "cron pattern '61 * * * *': minute field '61' is out of range; "
                "accepted: 0-59, *, */n, a-b, a-b/n, a/n, lists",
            ),
            (
                "0 0 31 2 *",
                "cron pattern '0 0 31 2 *': day field '31' never occurs in month field "
                "'2'; pick days that exist in those months",
            ),
            (
                "0 0 * * 1,5#2",
                "cron pattern '0 0 * * 1,5#2': weekday field '1,5#2' mixes plain "
                "weekdays with '#' or 'L' items; split it into two patterns; accepted: "
                "0-7 (0 and 7 are Sunday), SUN-SAT, d#k (k 1-5), dL or d#L, ?, *, */n, "
                "a-b, a-b/n, a/n, lists",
            ),
            (
                "@often",
                "cron pattern '@often': unknown nickname '@often'; accepted: @yearly, "
                "@annually, @monthly, @weekly, @daily, @midnight, @hourly",
            ),
            (
                "0 0 * foo *",
                "cron pattern '0 0 * foo *': month field 'foo' is not a number or a "
                "known name; accepted: 1-12, JAN-DEC, *, */n, a-b, a-b/n, a/n, lists",
            ),
        ],
    )
    def test_exact_refusals(self, text: str, message: str) -> None:
        with pytest.raises(PatternError) as caught:
            parse_pattern(text)

        assert str(caught.value) == message
        assert caught.value.pattern == text

    @pytest.mark.parametrize(
        ("text", "field", "fragment"),
        [
            ("* * * *", None, "has 4 fields"),
            ("", None, "has 0 fields"),
            ("5-1 * * * *", "minute", "runs backwards"),
            ("*/0 * * * *", "minute", "has step 0"),
            ("*/61 * * * *", "minute", "has step 61"),
            ("0 24 * * *", "hour", "out of range"),
            ("0 0 0 * *", "day", "out of range"),
            ("0 0 * 13 *", "month", "out of range"),
            ("0 0 * * 8", "weekday", "out of range"),
            ("0 0 * * MON#6", "weekday", "occurrence 6"),
            ("0 0 * * L", "weekday", "ambiguous"),
            ("0 0 * * sun-sun", "weekday", "ambiguous"),
            ("0 0 * * 7/2", "weekday", "starts a step at 7"),
            ("0 0 * * +MON", "weekday", "'+' (AND) modifier"),
            ("0 0 LW * *", "day", "is not supported"),
            ("0 0 L-2 * *", "day", "is not supported"),
            ("0 0 1W,15 * *", "day", "uses W in a list"),
            ("0 0 1-15W * *", "day", "uses L or W"),
            ("0 0 0 * * * 1969", "year", "out of range"),
            ("0 0 0 * * * 2100", "year", "out of range"),
            ("0 0 1,,2 * *", "day", "empty item"),
            ("0 0 * * MON#", "weekday", "malformed"),
            ("x * * * *", "minute", "not a number"),
            ("0 0 * * SUNDAY", "weekday", "not a number"),
        ],
    )
    def test_refusals_name_the_field(
        self, text: str, field: str | None, fragment: str
    ) -> None:
        with pytest.raises(PatternError) as caught:
            parse_pattern(text)

        assert caught.value.field == field
        assert fragment in str(caught.value)
        assert repr(text) in str(caught.value)


class TestFireTimes:
    def test_seconds_come_first(self) -> None:
        assert fires("*/10 * * * * *", utc(2024, 1, 1, 0, 0, 5), 3) == [
            utc(2024, 1, 1, 0, 0, 10),
            utc(2024, 1, 1, 0, 0, 20),
            utc(2024, 1, 1, 0, 0, 30),
        ]

    def test_five_fields_fire_on_the_minute(self) -> None:
        assert fires("* * * * *", utc(2024, 1, 1, 0, 0, 0, 500), 2) == [
            utc(2024, 1, 1, 0, 1),
            utc(2024, 1, 1, 0, 2),
        ]

    def test_strictly_after(self) -> None:
        pattern = parse_pattern("0 12 * * *")

        assert pattern.next_after(utc(2024, 1, 1, 12)) == utc(2024, 1, 2, 12)

    def test_weekday_seven_is_sunday(self) -> None:
        assert fires("0 0 * * 7", START, 2) == [utc(2024, 1, 7), utc(2024, 1, 14)]
        assert fires("0 0 * * 5-7", START, 3) == [
            utc(2024, 1, 5),
            utc(2024, 1, 6),
            utc(2024, 1, 7),
        ]

    def test_day_and_weekday_combine_with_or(self) -> None:
        assert fires("0 0 1 * MON", utc(2024, 1, 28), 3) == [
            utc(2024, 1, 29),
            utc(2024, 2, 1),
            utc(2024, 2, 5),
        ]

    def test_step_over_all_days_still_restricts(self) -> None:
        assert fires("0 0 */1 * MON", START, 2) == [utc(2024, 1, 2), utc(2024, 1, 3)]

    def test_last_day_of_month(self) -> None:
        assert fires("0 0 L * *", START, 3) == [
            utc(2024, 1, 31),
            utc(2024, 2, 29),
            utc(2024, 3, 31),
        ]

    def test_last_weekday_of_month(self) -> None:
        assert fires("0 0 * * 5L", START, 3) == [
            utc(2024, 1, 26),
            utc(2024, 2, 23),
            utc(2024, 3, 29),
        ]
        assert fires("0 0 * * FRI#L", START, 1) == [utc(2024, 1, 26)]

    def test_nth_weekday(self) -> None:
        assert fires("0 0 * * 5#2", START, 3) == [
            utc(2024, 1, 12),
            utc(2024, 2, 9),
            utc(2024, 3, 8),
        ]

    def test_nth_weekday_or_day(self) -> None:
        assert fires("0 0 20 * 5#2", START, 3) == [
            utc(2024, 1, 12),
            utc(2024, 1, 20),
            utc(2024, 2, 9),
        ]

    def test_nearest_weekday(self) -> None:
        # 2024-06-15 is a Saturday, 2024-09-15 a Sunday
        assert fires("0 0 15W 6,9 *", START, 2) == [utc(2024, 6, 14), utc(2024, 9, 16)]
        # 2024-06-01 is a Saturday: the 1st's nearest weekday stays in June
        assert fires("0 0 1W 6 *", START, 1) == [utc(2024, 6, 3)]

    def test_names_and_years(self) -> None:
        assert fires("0 0 0 29 FEB * 2025-2030", START, 1) == [utc(2028, 2, 29)]
        assert fires("0 30 9 * * MON-FRI 2031", START, 1) == [utc(2031, 1, 1, 9, 30)]

    def test_years_run_out(self) -> None:
        pattern = parse_pattern("0 0 0 1 1 * 2030")

        assert pattern.next_after(START) == utc(2030, 1, 1)
        with pytest.raises(PatternExhausted, match="year field"):
            pattern.next_after(utc(2030, 1, 1))

    def test_time_zone(self) -> None:
        pattern = parse_pattern("0 9 * * *")

        fired = pattern.next_after(START, NEW_YORK)

        assert fired == utc(2024, 1, 1, 14)
        assert fired.tzinfo is NEW_YORK

    def test_naive_moment_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no time zone"):
            parse_pattern("* * * * *").next_after(datetime(2024, 1, 1))

    def test_previous_before_includes_the_moment(self) -> None:
        pattern = parse_pattern("*/15 * * * *")

        assert pattern.previous_before(utc(2024, 1, 1, 10, 30)) == utc(
            2024, 1, 1, 10, 30
        )
        assert pattern.previous_before(utc(2024, 1, 1, 10, 44, 59, 9)) == utc(
            2024, 1, 1, 10, 30
        )

    def test_matches(self) -> None:
        pattern = parse_pattern("0 0 L * *")

        assert pattern.matches(utc(2024, 2, 29))
        assert not pattern.matches(utc(2024, 2, 28))
        assert not pattern.matches(utc(2024, 2, 29, 0, 0, 1))

    def test_shared_between_threads(self) -> None:
        pattern = parse_pattern("*/7 * * * * *")
        expected = fires("*/7 * * * * *", START, 200)
        results: list[list[datetime]] = []

        def walk() -> None:
            results.append(fires("*/7 * * * * *", START, 200))

        threads = [threading.Thread(target=walk) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert results == [expected] * 4
        assert pattern.next_after(START) == expected[0]


class TestDaylightSaving:
    def test_skipped_wall_time_fires_after_the_gap(self) -> None:
        # 2024-03-31 02:00 CET jumps to 03:00 CEST in Berlin
        fired = fires("30 2 * * *", utc(2024, 3, 30, 12), 2, BERLIN)

        assert fired == [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30)]
        assert fired[0].astimezone(BERLIN).time().isoformat() == "03:00:00"

    def test_skipped_times_collapse_into_one_fire(self) -> None:
        fired = fires("*/20 * * * *", utc(2024, 3, 31, 0, 30), 3, BERLIN)

        assert fired == [
            utc(2024, 3, 31, 0, 40),
            utc(2024, 3, 31, 1, 0),
            utc(2024, 3, 31, 1, 20),
        ]

    def test_skipped_hour_within_the_hour_field(self) -> None:
        fired = fires("0 */10 2 * * *", utc(2024, 3, 30, 12), 2, BERLIN)

        assert fired == [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0)]

    def test_repeated_wall_time_fires_once(self) -> None:
        # 2024-10-27 03:00 CEST goes back to 02:00 CET in Berlin
        fired = fires("30 2 * * *", utc(2024, 10, 26, 12), 2, BERLIN)

        assert fired == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]

    def test_repeated_hour_is_walked_once(self) -> None:
        fired = fires("*/30 * * * *", utc(2024, 10, 26, 23, 30), 4, BERLIN)

        assert fired == [
            utc(2024, 10, 27, 0, 0),
            utc(2024, 10, 27, 0, 30),
            utc(2024, 10, 27, 2, 0),
            utc(2024, 10, 27, 2, 30),
        ]

    def test_starting_inside_the_second_pass(self) -> None:
        pattern = parse_pattern("*/30 * * * *")
        inside = utc(2024, 10, 27, 1, 10)  # 02:10 CET, the second 02:10

        after = pattern.next_after(inside, BERLIN)
        before = pattern.previous_before(inside, BERLIN)

        assert after.astimezone(UTC) == utc(2024, 10, 27, 2, 0)
        assert before.astimezone(UTC) == utc(2024, 10, 27, 0, 30)

    def test_previous_before_in_the_gap(self) -> None:
        pattern = parse_pattern("30 2 * * *")

        assert pattern.previous_before(utc(2024, 3, 31, 1, 5), BERLIN) == utc(
            2024, 3, 31, 1
        )

    @settings(max_examples=40, deadline=None)
    @given(
        text=st.sampled_from(
            ["*/7 * * * *", "15,45 1-3 * * *", "0 30 2 * * *", "*/13 2 * * *"]
        ),
        zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Sydney"]),
        day=st.integers(min_value=0, max_value=365),
    )
    def test_fires_strictly_increase(self, text: str, zone: str, day: int) -> None:
        tz = ZoneInfo(zone)
        pattern = parse_pattern(text)
        moment = utc(2024, 1, 1) + timedelta(days=day)
        seen = [moment]

        for _ in range(40):
            fired = pattern.next_after(seen[-1], tz)
            seen.append(fired)

        instants = [moment.astimezone(UTC) for moment in seen]
        assert instants == sorted(set(instants))
        for fired in instants[1:]:
            assert pattern.previous_before(fired, tz).astimezone(UTC) == fired
            assert pattern.matches(fired, tz)


class TestTimezones:
    def test_known_zones(self) -> None:
        assert resolve_timezone("UTC") is UTC
        assert resolve_timezone("Europe/Berlin") == BERLIN

    @pytest.mark.parametrize("name", ["Mars/Base", "", "../etc/passwd"])
    def test_unknown_zone(self, name: str) -> None:
        with pytest.raises(ValueError) as caught:
            resolve_timezone(name)

        assert str(caught.value) == (
            f"unknown time zone {name!r}; use an IANA name such as 'UTC' or "
            "'Europe/Berlin'"
        )
