"""Cron patterns in croner's dialect, and the instants at which they fire.

Every schedule in the config is parsed here, once, at config load; the server
scheduler then asks each pattern for its next fire instant on every tick, and
the build translates patterns for other platforms from the parsed fields.

The dialect is croner's:

- 5 fields ``minute hour day month weekday``; 6 fields put the *second first*;
  7 fields add a trailing year (1970-2099).
- Nicknames: ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``,
  ``@midnight``, ``@hourly`` (case-insensitive).
- Each field is a list of items: ``*``, ``?`` (a wildcard, like ``*``), a
  number, a range ``a-b`` (``a`` not after ``b``), and steps ``*/n``, ``a-b/n``,
  ``a/n`` (from ``a`` to the field's end).
- Month names ``JAN``-``DEC`` and weekday names ``SUN``-``SAT``, any case.
  Weekday 0 and 7 are both Sunday; as a range end ``SUN`` means 7, so
  ``SUN-SUN`` (which croner reads as the whole week) is refused.
- Day of month: ``L`` (last day, also inside a list) and ``nW`` (the weekday
  nearest to day n, alone in the field, never crossing into another month; a
  day past the month's end is read as the month's last day).
- Weekday: ``d#k`` (k-th weekday d of the month, k 1-5, ``MON-FRI#2`` allowed),
  ``d#L`` or ``dL`` (last weekday d of the month).
- When day of month and weekday are both restricted (neither is ``*`` nor
  ``?``), a day matching either one fires (croner's default, like Vixie cron).

Refused, with a ``PatternError`` that says what to write instead: ``LW``,
``L-n``, ``L`` alone as a weekday, ``W`` in a list or range, weekday lists
that mix plain days with ``#``/``L`` items, croner's ``+`` (AND) modifier,
years outside 1970-2099, and day/month pairs that never occur (``31 2``).

Fire instants are computed in the given time zone (UTC by default) from the
local wall clock, with one rule for daylight saving: each matching wall time
fires once, at its first occurrence. A wall time repeated when clocks go back
fires in the first pass only; a wall time skipped when clocks go forward fires
at the first instant after the gap (02:30 on a spring-forward night in
Europe/Berlin fires at 03:00 CEST), and several skipped times collapse into that
one fire. Fire instants are therefore strictly increasing in UTC. They are
returned in the pattern's zone; compare them after ``astimezone(UTC)``, since
Python never finds an ambiguous local time equal to a time in another zone.

croniter does the calendar walking on naive wall-clock times; this module owns
parsing and validation (croniter's own six-field form puts seconds last and
it reads some ranges loosely), the day-of-month/weekday union, and the mapping
of wall times to instants. This module ships in every build output, so it uses
the standard library and croniter only, and imports croniter when a pattern is
first asked for an instant: reading and translating patterns never needs it.
"""

from __future__ import annotations

import calendar
import functools
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from croniter import croniter

FIELDS = ("second", "minute", "hour", "day", "month", "weekday", "year")

BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "weekday": (0, 7),
    "year": (1970, 2099),
}

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT"),
        start=1,
    )
} | {"NOV": 11, "DEC": 12}

WEEKDAY_NAMES = {
    name: number
    for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}

LAST = -1

_COMMON = "*, */n, a-b, a-b/n, a/n, lists"
ACCEPTED = {
    "second": f"0-59, {_COMMON}",
    "minute": f"0-59, {_COMMON}",
    "hour": f"0-23, {_COMMON}",
    "day": f"1-31, L, nW (alone), ?, {_COMMON}",
    "month": f"1-12, JAN-DEC, {_COMMON}",
    "weekday": f"0-7 (0 and 7 are Sunday), SUN-SAT, d#k (k 1-5), dL or d#L, ?, "
    f"{_COMMON}",
    "year": f"1970-2099, {_COMMON}",
}

_NUMBER = re.compile(r"\d+")
_NAME = re.compile(r"[A-Z]{3}")
_STEP = re.compile(r"(?P<base>[^/]+)/(?P<step>\d+)")
_RANGE = re.compile(r"(?P<start>\w+)-(?P<stop>\w+)")
_NEAREST = re.compile(r"(?P<day>\d+)W")
_NTH = re.compile(r"(?P<days>[^#]+)#(?P<nth>\d+|L)")
_LAST_WEEKDAY = re.compile(r"(?P<day>\d+|[A-Z]{3})L")


class PatternError(ValueError):
    """A cron pattern that cannot be read, or cannot be read unambiguously."""

    def __init__(self, pattern: str, reason: str, field: str | None = None) -> None:
        self.pattern = pattern
        self.field = field
        self.reason = reason
        super().__init__(f"cron pattern {pattern!r}: {reason}")


class PatternExhausted(LookupError):
    """A pattern whose year field leaves no fire instant in the asked direction."""

    def __init__(self, pattern: str, moment: datetime, after: bool) -> None:
        self.pattern = pattern
        self.moment = moment
        where = "after" if after else "at or before"
        super().__init__(
            f"cron pattern {pattern!r} has no fire instant {where} "
            f"{moment.isoformat()}; check its year field"
        )


@dataclass(frozen=True)
class CronItem:
    """One comma-separated item of a field, with names already turned to numbers.

    ``kind`` is ``"range"`` (``*``, a number, ``a-b``, with ``step``),
    ``"last"`` (``L`` in day of month), ``"nearest"`` (``nW``, day in ``start``)
    or ``"nth"`` (weekday ``start``; ``nth`` 1-5, or ``LAST``).
    """

    kind: str
    start: int = 0
    stop: int = 0
    step: int = 1
    star: bool = False
    nth: int = 0

    def values(self) -> range:
        return range(self.start, self.stop + 1, self.step)

    def text(self, field_name: str) -> str:
        """The item in normalized form: numbers, ``a-b/n``, ``L``, ``nW``, ``d#k``."""
        if self.kind == "last":
            return "L"
        if self.kind == "nearest":
            return f"{self.start}W"
        if self.kind == "nth":
            return f"{self.start}#{'L' if self.nth == LAST else self.nth}"
        if self.star:
            return "*" if self.step == 1 else f"*/{self.step}"
        if self.start == self.stop:
            return str(self.start)
        if self.step == 1:
            return f"{self.start}-{self.stop}"
        return f"{self.start}-{self.stop}/{self.step}"


@dataclass(frozen=True)
class Pattern:
    """A parsed cron pattern; make one with `parse_pattern`."""

    text: str
    second: str
    minute: str
    hour: str
    day: str
    month: str
    weekday: str
    year: str
    has_seconds: bool
    parsed: dict[str, tuple[CronItem, ...]] = field(repr=False, compare=False)
    _engine: _Engine = field(repr=False, compare=False)

    def items(self, field_name: str) -> tuple[CronItem, ...]:
        return self.parsed[field_name]

    def values(self, field_name: str) -> frozenset[int]:
        """Every plain value of a field, weekday 7 folded into 0."""
        found = {
            value
            for item in self.parsed[field_name]
            if item.kind == "range"
            for value in item.values()
        }
        if field_name == "weekday" and 7 in found:
            found = (found - {7}) | {0}
        return frozenset(found)

    def is_restricted(self, field_name: str) -> bool:
        """True unless the field was written as a bare wildcard."""
        return getattr(self, field_name) != "*"

    def next_after(self, moment: datetime, tz: tzinfo = UTC) -> datetime:
        """The first fire instant strictly after ``moment``, as an aware time in tz."""
        limit = _as_utc(moment, self.text)
        local = limit.astimezone(tz)
        start = local.replace(tzinfo=None)
        if _in_second_pass(local):
            start = _overlap_end_wall(local, tz) - timedelta(microseconds=1)

        wall = self._engine.next_wall(start, self.text, moment)
        while True:
            instant = _instant_of(wall, tz)
            if instant.astimezone(UTC) > limit:
                return instant
            wall = self._engine.next_wall(wall, self.text, moment)

    def previous_before(self, moment: datetime, tz: tzinfo = UTC) -> datetime:
        """The latest fire instant at or before ``moment``, as an aware time in tz."""
        limit = _as_utc(moment, self.text)
        local = limit.astimezone(tz)
        start = local.replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
        if _in_second_pass(local):
            start = _overlap_end_wall(local, tz)

        wall = self._engine.previous_wall(start, self.text, moment)
        while True:
            instant = _instant_of(wall, tz)
            if instant.astimezone(UTC) <= limit:
                return instant
            wall = self._engine.previous_wall(wall, self.text, moment)

    def matches(self, moment: datetime, tz: tzinfo = UTC) -> bool:
        """True when ``moment`` is exactly one of the pattern's fire instants."""
        try:
            fired = self.previous_before(moment, tz)
        except PatternExhausted:
            return False
        return fired.astimezone(UTC) == _as_utc(moment, self.text)


class _Engine:
    """croniter objects over naive wall-clock time, built on the pattern's first
    walk.

    When day of month and weekday are both restricted, one croniter walks each
    side and the union is taken here, because croniter's own union mishandles
    ``#``, ``L`` and ``W`` items.
    """

    def __init__(self, text: str, expressions: list[str]) -> None:
        self._text = text
        self._expressions = expressions
        self._walkers: list[croniter] | None = None
        self._lock = threading.Lock()

    def next_wall(self, start: datetime, text: str, moment: datetime) -> datetime:
        found = self._walk(start, is_prev=False)
        if not found:
            raise PatternExhausted(text, moment, after=True)
        return min(found)

    def previous_wall(self, start: datetime, text: str, moment: datetime) -> datetime:
        found = self._walk(start, is_prev=True)
        if not found:
            raise PatternExhausted(text, moment, after=False)
        return max(found)

    def _walk(self, start: datetime, is_prev: bool) -> list[datetime]:
        from croniter import CroniterBadDateError

        found = []
        with self._lock:
            for walker in self._started():
                step = walker.get_prev if is_prev else walker.get_next
                try:
                    found.append(step(start_time=start))
                except CroniterBadDateError:
                    continue
        return found

    def _started(self) -> list[croniter]:
        """The walkers, made on first use; call with the lock held."""
        if self._walkers is None:
            from croniter import CroniterError, croniter

            anchor = datetime(2000, 1, 1)
            try:
                self._walkers = [
                    croniter(expr, anchor, ret_type=datetime, second_at_beginning=True)
                    for expr in self._expressions
                ]
            except CroniterError as error:
                raise PatternError(
                    self._text, f"cannot be scheduled ({error}); simplify the pattern"
                ) from error
        return self._walkers


@functools.lru_cache(maxsize=1024)
def parse_pattern(text: str) -> Pattern:
    """Parse a pattern in croner's dialect; the same text gives the same object."""
    if not isinstance(text, str):
        raise PatternError(str(text), "a cron pattern must be a string")
    body = NICKNAMES.get(text.strip().lower(), text)
    if body.strip().startswith("@"):
        raise PatternError(
            text,
            f"unknown nickname {body.strip()!r}; accepted: " + ", ".join(NICKNAMES),
        )

    parts = body.split()
    if len(parts) not in (5, 6, 7):
        raise PatternError(
            text,
            f"has {len(parts)} field{'' if len(parts) == 1 else 's'}; use 5 (minute "
            "hour day month weekday), 6 (second first) or 7 (second first, year last)",
        )
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) == 6:
        parts = [*parts, "*"]

    parsed = {
        name: _parse_field(text, name, part)
        for name, part in zip(FIELDS, parts, strict=True)
    }
    _check_weekday_mix(text, parsed["weekday"])
    texts = {
        name: ",".join(item.text(name) for item in items)
        for name, items in parsed.items()
    }
    _check_day_occurs(text, parsed, texts)

    return Pattern(
        text=text,
        has_seconds=len(body.split()) > 5,
        parsed=parsed,
        _engine=_Engine(text, _engine_expressions(parsed, texts)),
        **texts,
    )


def resolve_timezone(name: str) -> tzinfo:
    """The tzinfo of an IANA zone name, or a ValueError naming the zone."""
    if name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC' or "
            "'Europe/Berlin'"
        ) from None


def _parse_field(text: str, name: str, part: str) -> tuple[CronItem, ...]:
    items: list[CronItem] = []
    for raw in part.split(","):
        if not raw:
            raise _field_error(text, name, part, "has an empty item")
        items.extend(_parse_item(text, name, raw))

    nearest = any(item.kind == "nearest" for item in items)
    if name == "day" and nearest and len(items) > 1:
        raise _field_error(
            text, name, part, "uses W in a list; nW must be the whole field"
        )
    return tuple(items)


def _parse_item(text: str, name: str, raw: str) -> list[CronItem]:
    """Parse one item; ``raw`` keeps the user's spelling for error messages."""
    body = raw.upper()
    low = BOUNDS[name][0]
    if body.startswith("+"):
        raise _field_error(
            text,
            name,
            raw,
            "uses the '+' (AND) modifier, which is not supported; days matching "
            "either the day or the weekday field fire",
        )
    if body in ("*", "?"):
        return [CronItem("range", low, _top(name), 1, star=True)]
    if name == "day":
        special = _parse_day_special(text, body, raw)
        if special is not None:
            return [special]
    if name == "weekday":
        special_items = _parse_weekday_special(text, body, raw)
        if special_items is not None:
            return special_items

    step_match = _STEP.fullmatch(body)
    base, step = (
        (step_match["base"], int(step_match["step"])) if step_match else (body, 1)
    )
    span = _top(name) - low + 1
    if not 1 <= step <= span:
        raise _field_error(
            text, name, raw, f"has step {step}; use a step from 1 to {span}"
        )

    if base in ("*", "?"):
        # "*/1" is still a restriction in croner's day rule, so it is not "*"
        return [CronItem("range", low, _top(name), step, star=step > 1)]
    range_match = _RANGE.fullmatch(base)
    if range_match:
        start = _value(text, name, range_match["start"], raw)
        stop = _value(text, name, range_match["stop"], raw, range_end=True)
        if name == "weekday" and (start, stop) == (0, 7) and base.startswith("SUN"):
            raise _field_error(
                text,
                name,
                raw,
                "is ambiguous (croner reads it as every day); write "
                "SUN for Sundays or SUN-SAT for every day",
            )
        if start > stop:
            raise _field_error(
                text,
                name,
                raw,
                f"runs backwards ({start} after {stop}); write it low to high "
                "or as a list",
            )
        return [CronItem("range", start, stop, step)]

    start = _value(text, name, base, raw)
    if name == "weekday" and start == 7:
        if step_match:
            raise _field_error(text, name, raw, "starts a step at 7; start it at 0")
        start = 0
    stop = _top(name) if step_match else start
    return [CronItem("range", start, stop, step)]


def _parse_day_special(text: str, body: str, raw: str) -> CronItem | None:
    if body == "L":
        return CronItem("last")
    if body == "LW" or body.startswith("L-"):
        raise _field_error(
            text,
            "day",
            raw,
            "is not supported; use L (last day) or nW (weekday nearest day n)",
        )
    nearest = _NEAREST.fullmatch(body)
    if nearest:
        day = int(nearest["day"])
        if not 1 <= day <= 31:
            raise _field_error(text, "day", raw, "is out of range")
        return CronItem("nearest", day, day)
    if "W" in body or "L" in body:
        raise _field_error(
            text, "day", raw, "uses L or W in a range or step, which is not supported"
        )
    return None


def _parse_weekday_special(text: str, body: str, raw: str) -> list[CronItem] | None:
    if body == "L":
        raise _field_error(
            text, "weekday", raw, "is ambiguous; write dL or d#L for the last weekday d"
        )
    last = _LAST_WEEKDAY.fullmatch(body)
    if last:
        day = _value(text, "weekday", last["day"], raw) % 7
        return [CronItem("nth", day, day, nth=LAST)]
    nth_match = _NTH.fullmatch(body)
    if nth_match is None:
        if "#" in body:
            raise _field_error(text, "weekday", raw, "has a malformed '#' item")
        return None

    nth_text = nth_match["nth"]
    nth = LAST if nth_text == "L" else int(nth_text)
    if nth != LAST and not 1 <= nth <= 5:
        raise _field_error(
            text, "weekday", raw, f"asks for occurrence {nth}; use 1-5 or L"
        )
    days = _parse_item(text, "weekday", nth_match["days"])
    folded = sorted({value % 7 for item in days for value in item.values()})
    return [CronItem("nth", day, day, nth=nth) for day in folded]


def _value(text: str, name: str, token: str, raw: str, range_end: bool = False) -> int:
    names = {"month": MONTH_NAMES, "weekday": WEEKDAY_NAMES}.get(name, {})
    if _NAME.fullmatch(token) and token in names:
        number = names[token]
        return 7 if name == "weekday" and range_end and number == 0 else number
    if not _NUMBER.fullmatch(token):
        raise _field_error(text, name, raw, "is not a number or a known name")
    number = int(token)
    low, high = BOUNDS[name]
    if not low <= number <= high:
        raise _field_error(text, name, raw, "is out of range")
    return number


def _top(name: str) -> int:
    """The last value a wildcard covers (weekday stops at 6, Saturday)."""
    return 6 if name == "weekday" else BOUNDS[name][1]


def _field_error(text: str, name: str, raw: str, problem: str) -> PatternError:
    return PatternError(
        text,
        f"{name} field {raw!r} {problem}; accepted: {ACCEPTED[name]}",
        field=name,
    )


def _check_weekday_mix(text: str, items: tuple[CronItem, ...]) -> None:
    kinds = {item.kind for item in items}
    if len(kinds) > 1:
        raw = ",".join(item.text("weekday") for item in items)
        raise _field_error(
            text,
            "weekday",
            raw,
            "mixes plain weekdays with '#' or 'L' items; split it into two patterns",
        )


def _check_day_occurs(
    text: str, parsed: dict[str, tuple[CronItem, ...]], texts: dict[str, str]
) -> None:
    """Refuse day/month pairs that never occur, unless the weekday can still fire."""
    if texts["weekday"] != "*" and texts["day"] != "*":
        return
    days = parsed["day"]
    if any(item.kind != "range" for item in days):
        return

    first_day = min(item.start for item in days)
    months = {value for item in parsed["month"] for value in item.values()}
    longest = max(calendar.monthrange(2024, month)[1] for month in months)
    if first_day > longest:
        raise PatternError(
            text,
            f"day field {texts['day']!r} never occurs in month field "
            f"{texts['month']!r}; pick days that exist in those months",
            field="day",
        )


def _engine_expressions(
    parsed: dict[str, tuple[CronItem, ...]], texts: dict[str, str]
) -> list[str]:
    """croniter expressions (second first, seven fields) covering the pattern."""
    fields = {name: _engine_field(name, parsed[name]) for name in FIELDS}
    if texts["day"] == "*" or texts["weekday"] == "*":
        return [" ".join(fields[name] for name in FIELDS)]

    by_day = dict(fields, weekday="*")
    by_weekday = dict(fields, day="*")
    return [" ".join(side[name] for name in FIELDS) for side in (by_day, by_weekday)]


def _engine_field(name: str, items: tuple[CronItem, ...]) -> str:
    if len(items) == 1 and items[0].star and items[0].step == 1:
        return "*"
    tokens: list[str] = []
    plain: set[int] = set()
    for item in items:
        if item.kind == "last":
            tokens.append("L")
        elif item.kind == "nearest":
            tokens.append(f"{item.start}W")
        elif item.kind == "nth":
            last = item.nth == LAST
            tokens.append(f"L{item.start}" if last else f"{item.start}#{item.nth}")
        else:
            plain.update(item.values())
    if name == "weekday" and 7 in plain:
        plain = (plain - {7}) | {0}
    tokens.extend(str(value) for value in sorted(plain))
    return ",".join(tokens)


def _as_utc(moment: datetime, text: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"cron pattern {text!r}: the moment {moment.isoformat()!r} has no time "
            "zone; pass an aware datetime such as datetime.now(UTC)"
        )
    return moment.astimezone(UTC)


def _instant_of(wall: datetime, tz: tzinfo) -> datetime:
    """The instant a wall time fires: its first occurrence, or the gap's end."""
    aware = wall.replace(tzinfo=tz, fold=0)
    if isinstance(tz, timezone):
        return aware
    if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return aware

    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after = aware.astimezone(UTC)
    low, high = min(before, after), max(before, after)
    return _offset_change(low, high, tz).astimezone(tz)


def _in_second_pass(local: datetime) -> bool:
    """True when a local time is the second occurrence of a repeated wall time."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _overlap_end_wall(local: datetime, tz: tzinfo) -> datetime:
    """The first wall time after the repeated stretch that ``local`` lies in."""
    first_offset = local.replace(fold=0).utcoffset()
    second_offset = local.utcoffset()
    assert first_offset is not None and second_offset is not None
    repeat = first_offset - second_offset

    now = local.astimezone(UTC)
    turn = _offset_change(now - repeat, now, tz)
    return (turn + repeat).astimezone(tz).replace(tzinfo=None)


def _offset_change(low: datetime, high: datetime, tz: tzinfo) -> datetime:
    """The first UTC instant in (low, high] whose offset in tz is high's offset."""
    target = high.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + timedelta(seconds=1)
        if middle.astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return high
