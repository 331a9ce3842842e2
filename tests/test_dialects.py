"""Platform dialects: each translation fires when the original does, or is refused.

The property tests read the translated text the way each platform reads it,
with a small reference interpreter written here independently of the package:
Cloudflare numbers weekdays 1 (Sunday) to 7 and takes names, Vercel numbers
them 0 (Sunday) to 6 and takes nothing else.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nitro_build.dialects import (
    DialectError,
    Translation,
    check_counts,
    fires_more_than_daily,
    to_cloudflare,
    to_vercel,
)
from nitro_build.runtime.cron import PatternError, parse_pattern

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN"]
MONTHS += ["JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
WINDOW = [date(2024, 1, 1) + timedelta(days=n) for n in range(2 * 366)]


def cloudflare(text: str, **options: str) -> str:
    return to_cloudflare(parse_pattern(text), **options).text


def vercel(text: str, **options: str | None) -> str:
    return to_vercel(parse_pattern(text), **options).text  # type: ignore[arg-type]


class TestCloudflare:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("*/5 * * * *", "*/5 * * * *"),
            ("0 0 * * 0", "0 0 * * SUN"),
            ("0 0 * * 7", "0 0 * * SUN"),
            ("0 0 * * 1-5", "0 0 * * MON-FRI"),
            ("0 0 * * 5-7", "0 0 * * SUN,FRI,SAT"),
            ("0 0 * * 1,3", "0 0 * * MON,WED"),
            ("0 0 * * */2", "0 0 * * SUN,TUE,THU,SAT"),
            ("0 0 * * 5L", "0 0 * * FRIL"),
            ("0 0 * * fri#2", "0 0 * * FRI#2"),
            ("0 0 L * *", "0 0 L * *"),
            ("0 0 15W * *", "0 0 15W * *"),
            ("0 0 1 * MON", "0 0 1 * MON"),
            ("0 9 * jan-mar *", "0 9 * 1-3 *"),
            ("10/15 * * * *", "10-59/15 * * * *"),
            ("0 */10 * * * *", "*/10 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@weekly", "0 0 * * SUN"),
            ("@yearly", "0 0 1 1 *"),
        ],
    )
    def test_translations(self, text: str, expected: str) -> None:
        translation = to_cloudflare(parse_pattern(text))

        assert translation == Translation(text, expected, ())

    def test_seconds_are_refused(self) -> None:
        with pytest.raises(DialectError) as caught:
            cloudflare("*/10 * * * * *")

        assert str(caught.value) == (
            "cron pattern '*/10 * * * * *' cannot run on Cloudflare: it has a seconds "
            "field and Cloudflare fires at most once a minute; use a 5-field pattern"
        )

    def test_other_time_zones_are_refused(self) -> None:
        with pytest.raises(DialectError) as caught:
            cloudflare("0 9 * * *", timezone="Europe/Berlin")

        assert str(caught.value) == (
            "cron pattern '0 9 * * *' cannot run on Cloudflare: the time zone is "
            "'Europe/Berlin' and Cloudflare reads patterns in UTC only; set timezone "
            "to 'UTC' and shift the hours yourself"
        )

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("0 0 0 * * * 2030", "year field"),
            ("0 0 1,L * *", "lists L with other days"),
            ("0 0 * * MON-FRI#2", "several '#' or 'L' items"),
        ],
    )
    def test_refusals(self, text: str, fragment: str) -> None:
        with pytest.raises(DialectError, match=fragment):
            cloudflare(text)

    def test_count_warning(self) -> None:
        patterns = [f"{minute} * * * *" for minute in range(6)]

        assert check_counts("cloudflare", patterns[:5], None) == []
        assert check_counts("cloudflare", patterns, None) == [
            "6 cron triggers: Cloudflare's free plan allows 5 per account, so "
            "deploying needs a paid plan or fewer schedules"
        ]


class TestVercel:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("0 0 * * 7", "0 0 * * 0"),
            ("0 0 * * SUN", "0 0 * * 0"),
            ("0 0 * * MON-FRI", "0 0 * * 1-5"),
            ("0 0 * * FRI-SUN", "0 0 * * 0,5,6"),
            ("0 0 1 JAN *", "0 0 1 1 *"),
            ("0 0 ? * *", "0 0 * * *"),
            ("0 0 0 * * *", "0 0 * * *"),
            ("@monthly", "0 0 1 * *"),
        ],
    )
    def test_translations(self, text: str, expected: str) -> None:
        assert vercel(text, plan="hobby") == expected

    def test_both_day_fields_are_refused(self) -> None:
        with pytest.raises(DialectError) as caught:
            vercel("0 0 1 * MON")

        assert str(caught.value) == (
            "cron pattern '0 0 1 * MON' cannot run on Vercel: it restricts both the "
            "day of month and the weekday, which Vercel does not allow; set one of "
            "the two fields to '*' or split it into two patterns"
        )

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("0 0 L * *", "day field uses 'L'"),
            ("0 0 15W * *", "day field uses '15W'"),
            ("0 0 * * 5#2", "weekday field uses '5#2'"),
            ("0 0 * * 5L", "weekday field uses '5#L'"),
            ("*/10 * * * * *", "seconds field"),
            ("0 0 0 * * * 2030", "year field"),
        ],
    )
    def test_refusals(self, text: str, fragment: str) -> None:
        with pytest.raises(DialectError, match=fragment):
            vercel(text)

    def test_hobby_plan_refuses_more_than_daily(self) -> None:
        with pytest.raises(DialectError) as caught:
            vercel("0 */6 * * *", plan="hobby")

        assert str(caught.value) == (
            "cron pattern '0 */6 * * *' cannot run on Vercel: it fires more than once "
            "a day and the Hobby plan allows at most one run a day; fire at most "
            "daily or set vercel.plan to 'pro'"
        )

    def test_unknown_plan_warns_about_hobby(self) -> None:
        translation = to_vercel(parse_pattern("0 */6 * * *"))

        assert translation.text == "0 */6 * * *"
        assert translation.warnings == (
            "cron pattern '0 */6 * * *' fires more than once a day; a Vercel Hobby "
            "plan refuses it (set vercel.plan to silence this)",
        )
        assert to_vercel(parse_pattern("0 */6 * * *"), plan="pro").warnings == ()

    def test_unknown_plan_name(self) -> None:
        with pytest.raises(DialectError, match=r"set vercel\.plan to one of"):
            vercel("0 0 * * *", plan="gold")

    def test_other_time_zones_are_refused(self) -> None:
        with pytest.raises(DialectError, match="reads patterns in UTC only"):
            vercel("0 0 * * *", timezone="America/New_York")

    def test_count_limit(self) -> None:
        patterns = [
            f"{minute} {hour} * * *" for hour in range(2) for minute in range(51)
        ]

        assert check_counts("vercel", patterns[:100], "pro") == []
        with pytest.raises(DialectError) as caught:
            check_counts("vercel", patterns, "pro")

        assert str(caught.value) == (
            "the schedules cannot run on Vercel: there are 102 cron patterns and a "
            "project allows 100; merge schedules so that at most 100 patterns remain"
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0 0 * * *", False),
        ("@daily", False),
        ("0 0 0 1 * *", False),
        ("0 0,12 * * *", True),
        ("*/30 0 * * * *", True),
        ("0 * * * *", True),
    ],
)
def test_fires_more_than_daily(text: str, expected: bool) -> None:
    assert fires_more_than_daily(parse_pattern(text)) is expected


# A reference reading of five-field patterns, one dialect at a time.

Reader = Callable[[date], bool]


def values(field: str, low: int, high: int, names: list[str], base: int) -> set[int]:
    """Values of a plain list field; names[i] stands for base + i."""

    def number(text: str) -> int:
        if text.upper() in names:
            return names.index(text.upper()) + base
        return int(text)

    found: set[int] = set()
    for token in field.split(","):
        body, _, step_text = token.partition("/")
        step = int(step_text) if step_text else 1
        if body in ("*", "?"):
            found.update(range(low, high + 1, step))
        elif "-" in body:
            start, stop = body.split("-")
            # croner reads SUN as 7 at a range's end
            last = 7 if stop.upper() == "SUN" and names and base == 0 else number(stop)
            found.update(range(number(start), last + 1, step))
        elif step_text:
            found.update(range(number(body), high + 1, step))
        else:
            found.add(number(body))
    return found


def nth_weekdays(day: date, weekday: int) -> list[int]:
    """Days of day's month that fall on weekday (0 Sunday)."""
    last = calendar.monthrange(day.year, day.month)[1]
    return [
        n
        for n in range(1, last + 1)
        if (date(day.year, day.month, n).weekday() + 1) % 7 == weekday
    ]


def nearest_weekday(day: date, target: int) -> int:
    last = calendar.monthrange(day.year, day.month)[1]
    target = min(target, last)
    weekday = date(day.year, day.month, target).weekday()
    if weekday == 5:
        return target - 1 if target > 1 else target + 2
    if weekday == 6:
        return target + 1 if target < last else target - 2
    return target


def day_reader(field: str) -> Reader:
    checks: list[Callable[[date, int], bool]] = []
    for token in field.upper().split(","):
        if token == "L":
            checks.append(lambda day, last: day.day == last)
        elif token == "LW":
            checks.append(lambda day, last: day.day == nearest_weekday(day, last))
        elif token.endswith("W"):
            target = int(token[:-1])
            checks.append(
                lambda day, last, n=target: day.day == nearest_weekday(day, n)
            )
        else:
            days = values(token, 1, 31, [], 0)
            checks.append(lambda day, last, days=days: day.day in days)

    def reads(day: date) -> bool:
        last = calendar.monthrange(day.year, day.month)[1]
        return any(check(day, last) for check in checks)

    return reads


def weekday_reader(field: str, dialect: str) -> Reader:
    """Cloudflare: 1-7 with 1 Sunday, names; croner: 0-7, 0 and 7 Sunday, names."""
    cloudflare_style = dialect == "cloudflare"
    base = 1 if cloudflare_style else 0
    high = 7 if cloudflare_style else 6
    names = WEEKDAYS if dialect != "vercel" else []
    checks: list[Callable[[date, int], bool]] = []

    def sunday_first(token: str) -> int:
        return (values(token, 0, 7, names, base).pop() - base) % 7

    for token in field.upper().split(","):
        if "#" in token:
            which, nth = token.split("#")
            target = sunday_first(which)
            index = -1 if nth == "L" else int(nth) - 1
            checks.append(
                lambda day, weekday, t=target, i=index: (
                    weekday == t and nth_weekdays(day, t)[i:][:1] == [day.day]
                )
            )
        elif token.endswith("L"):
            target = sunday_first(token[:-1])
            checks.append(
                lambda day, weekday, t=target: (
                    weekday == t and nth_weekdays(day, t)[-1] == day.day
                )
            )
        else:
            found = {(v - base) % 7 for v in values(token, base, high, names, base)}
            checks.append(lambda day, weekday, found=found: weekday in found)

    def reads(day: date) -> bool:
        weekday = (day.weekday() + 1) % 7
        return any(check(day, weekday) for check in checks)

    return reads


def read_days(text: str, dialect: str) -> Reader:
    _, _, day, month, weekday = text.split()
    months = values(month, 1, 12, MONTHS if dialect != "vercel" else [], 1)
    by_day = day_reader(day)
    by_weekday = weekday_reader(weekday, dialect)
    day_open = day in ("*", "?")
    weekday_open = weekday in ("*", "?")

    def reads(candidate: date) -> bool:
        if candidate.month not in months:
            return False
        if day_open or weekday_open:
            return by_day(candidate) and by_weekday(candidate)
        return by_day(candidate) or by_weekday(candidate)

    return reads


def read_times(text: str) -> tuple[set[int], set[int]]:
    minute, hour = text.split()[:2]
    minutes = set().union(*(values(token, 0, 59, [], 0) for token in minute.split(",")))
    hours = set().union(*(values(token, 0, 23, [], 0) for token in hour.split(",")))
    return minutes, hours


def assert_same_fires(original: str, translated: str, dialect: str) -> None:
    assert read_times(translated) == read_times(original)
    expected = read_days(original, "croner")
    actual = read_days(translated, dialect)
    for day in WINDOW:
        assert actual(day) == expected(day), (original, translated, day)


# Pattern generators: five fields in croner's dialect, valid by construction.


def plain_items(
    low: int, high: int, names: list[str] | None = None
) -> st.SearchStrategy:
    def spell(value: int) -> str:
        if names and value - low < len(names) and value - low >= 0:
            return names[value - low]
        return str(value)

    single = st.integers(low, high).map(spell)
    span = st.tuples(st.integers(low, high), st.integers(low, high)).map(sorted)
    ranged = span.map(lambda pair: f"{spell(pair[0])}-{spell(pair[1])}")
    step = st.integers(1, min(12, high - low + 1))
    stepped = st.tuples(span, step).map(
        lambda pair: f"{pair[0][0]}-{pair[0][1]}/{pair[1]}"
    )
    starred = step.map(lambda n: f"*/{n}")
    started = st.tuples(st.integers(low, high), step).map(
        lambda pair: f"{pair[0]}/{pair[1]}"
    )
    return st.one_of(single, ranged, stepped, starred, started)


def plain_field(
    low: int, high: int, names: list[str] | None = None
) -> st.SearchStrategy:
    listed = st.lists(plain_items(low, high, names), min_size=1, max_size=3).map(
        ",".join
    )
    return st.one_of(st.just("*"), listed)


weekday_names = [*WEEKDAYS, "SUN"]
day_fields = st.one_of(
    plain_field(1, 28),
    st.sampled_from(["?", "L", "1,L", "15W", "1W", "31W", "*/1"]),
)
weekday_fields = st.one_of(
    plain_field(0, 7, weekday_names),
    st.sampled_from(["?", "7", "5L", "fri#l", "1#1", "MON#5", "2#3", "0L", "5-7"]),
)
patterns = st.tuples(
    plain_field(0, 59),
    plain_field(0, 23),
    day_fields,
    plain_field(1, 12, MONTHS),
    weekday_fields,
).map(" ".join)


def refused_by_vercel(text: str) -> bool:
    _, _, day, _, weekday = text.split()
    special = any(mark in day.upper() for mark in "LW") or any(
        mark in weekday.upper() for mark in "#L"
    )
    both = day not in ("*", "?") and weekday not in ("*", "?")
    return special or both


def refused_by_cloudflare(text: str) -> bool:
    day = text.split()[2]
    return "," in day and any(mark in day.upper() for mark in "LW")


def walk(pattern_text: str, count: int) -> list[datetime]:
    pattern = parse_pattern(pattern_text)
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    fired = []
    for _ in range(count):
        moment = pattern.next_after(moment)
        fired.append(moment)
    return fired


def reference_walk(text: str, count: int) -> list[datetime]:
    minutes, hours = read_times(text)
    reads = read_days(text, "croner")
    fired: list[datetime] = []
    for day in WINDOW:
        if not reads(day):
            continue
        for hour in sorted(hours):
            for minute in sorted(minutes):
                moment = datetime(
                    day.year, day.month, day.day, hour, minute, tzinfo=UTC
                )
                if moment > datetime(2024, 1, 1, tzinfo=UTC):
                    fired.append(moment)
                if len(fired) == count:
                    return fired
    return fired


PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(text=patterns)
def test_engine_agrees_with_the_reference(text: str) -> None:
    try:
        parse_pattern(text)
    except PatternError:
        assume(False)

    expected = reference_walk(text, 25)
    assert walk(text, len(expected)) == expected


@PROPERTY
@given(text=patterns)
def test_cloudflare_fires_at_the_same_minutes(text: str) -> None:
    try:
        pattern = parse_pattern(text)
    except PatternError:
        assume(False)

    if refused_by_cloudflare(text):
        with pytest.raises(DialectError):
            to_cloudflare(pattern)
        return
    assert_same_fires(text, to_cloudflare(pattern).text, "cloudflare")


@PROPERTY
@given(text=patterns)
def test_vercel_fires_at_the_same_minutes(text: str) -> None:
    try:
        pattern = parse_pattern(text)
    except PatternError:
        assume(False)

    if refused_by_vercel(text):
        with pytest.raises(DialectError):
            to_vercel(pattern, plan="pro")
        return
    translated = to_vercel(pattern, plan="pro").text
    assert not any(name in translated.upper() for name in WEEKDAYS + MONTHS)
    assert_same_fires(text, translated, "vercel")
