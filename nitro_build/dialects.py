"""Translate parsed cron patterns into the dialect a platform reads, or refuse.

The build validates every schedule against the chosen preset before writing
anything: the server presets read croner's dialect directly, while Cloudflare
and Vercel get a five-field pattern in their own syntax. A pattern that would
fire at different instants on the platform is a `DialectError`, never a quiet
rewrite.

- Cloudflare reads weekday number 1 as Sunday, so weekdays are written as
  names (``MON-FRI``); it accepts ``L``/``nW`` alone in the day field and
  ``FRIL``/``FRI#2`` alone in the weekday field; UTC only.
- Vercel reads numbers only (weekday 0-6, 0 is Sunday) and nothing of ``L``,
  ``W``, ``#``; day of month and weekday may not both be restricted; UTC only;
  on the Hobby plan a pattern may fire at most once a day.
- Neither has a seconds field: a seconds field of exactly 0 is dropped, any
  other is refused. Neither has a year field: only ``*`` is accepted there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nitro_build.runtime.cron import LAST, Pattern

logger = logging.getLogger(__name__)

WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "GMT", "Etc/GMT", "Zulu"})

VERCEL_PLANS = ("hobby", "pro", "enterprise")

CLOUDFLARE_FREE_TRIGGERS = 5

VERCEL_CRON_LIMIT = 100


class DialectError(ValueError):
    """A pattern, or a set of patterns, that a platform cannot run as written."""

    def __init__(self, pattern: str, platform: str, reason: str, fix: str) -> None:
        self.pattern = pattern
        self.platform = platform
        self.reason = reason
        self.fix = fix
        subject = f"cron pattern {pattern!r}" if pattern else "the schedules"
        super().__init__(f"{subject} cannot run on {platform}: {reason}; {fix}")


@dataclass(frozen=True)
class Translation:
    """A pattern as the platform must be given it, with anything worth a warning."""

    original: str
    text: str
    warnings: tuple[str, ...] = ()


def to_cloudflare(pattern: Pattern, timezone: str = "UTC") -> Translation:
    """Cloudflare's five-field form of a pattern, weekdays written as names."""
    platform = "Cloudflare"
    _check_common(pattern, platform, timezone)

    day = _cloudflare_day(pattern, platform)
    weekday = _cloudflare_weekday(pattern, platform)
    fields = [
        _plain_field(pattern, "minute"),
        _plain_field(pattern, "hour"),
        day,
        _plain_field(pattern, "month"),
        weekday,
    ]
    return Translation(pattern.text, " ".join(fields))


def to_vercel(
    pattern: Pattern, timezone: str = "UTC", plan: str | None = None
) -> Translation:
    """Vercel's numeric five-field form of a pattern; refuses what Vercel lacks."""
    platform = "Vercel"
    _check_common(pattern, platform, timezone)
    if plan is not None and plan not in VERCEL_PLANS:
        raise DialectError(
            pattern.text,
            platform,
            f"the plan {plan!r} is unknown",
            "set vercel.plan to one of " + ", ".join(VERCEL_PLANS),
        )

    for name in ("day", "weekday"):
        special = [item for item in pattern.items(name) if item.kind != "range"]
        if special:
            shown = special[0].text(name)
            raise DialectError(
                pattern.text,
                platform,
                f"its {name} field uses {shown!r} and Vercel has no L, W or #",
                "use plain numbers, ranges and steps",
            )
    if pattern.is_restricted("day") and pattern.is_restricted("weekday"):
        raise DialectError(
            pattern.text,
            platform,
            "it restricts both the day of month and the weekday, which Vercel "
            "does not allow",
            "set one of the two fields to '*' or split it into two patterns",
        )

    warnings: list[str] = []
    if fires_more_than_daily(pattern):
        if plan == "hobby":
            raise DialectError(
                pattern.text,
                platform,
                "it fires more than once a day and the Hobby plan allows at most "
                "one run a day",
                "fire at most daily or set vercel.plan to 'pro'",
            )
        if plan is None:
            warnings.append(
                f"cron pattern {pattern.text!r} fires more than once a day; a Vercel "
                "Hobby plan refuses it (set vercel.plan to silence this)"
            )

    fields = [
        _plain_field(pattern, "minute"),
        _plain_field(pattern, "hour"),
        _plain_field(pattern, "day"),
        _plain_field(pattern, "month"),
        _weekday_list(pattern, names=False),
    ]
    return Translation(pattern.text, " ".join(fields), tuple(warnings))


def check_counts(platform: str, patterns: list[str], plan: str | None) -> list[str]:
    """Warnings for a platform's limits on the number of patterns, or an error."""
    count = len(set(patterns))
    key = platform.lower()
    if key.startswith("cloudflare"):
        if count > CLOUDFLARE_FREE_TRIGGERS:
            return [
                f"{count} cron triggers: Cloudflare's free plan allows "
                f"{CLOUDFLARE_FREE_TRIGGERS} per account, so deploying needs a paid "
                "plan or fewer schedules"
            ]
        return []
    if key.startswith("vercel"):
        if count > VERCEL_CRON_LIMIT:
            raise DialectError(
                "",
                "Vercel",
                f"there are {count} cron patterns and a project allows "
                f"{VERCEL_CRON_LIMIT}",
                "merge schedules so that at most 100 patterns remain",
            )
        return []
    return []


def fires_more_than_daily(pattern: Pattern) -> bool:
    """True when some day holds more than one fire time."""
    times = 1
    for name in ("second", "minute", "hour"):
        times *= len(pattern.values(name))
    return times > 1


def _check_common(pattern: Pattern, platform: str, timezone: str) -> None:
    if pattern.values("second") != frozenset({0}):
        raise DialectError(
            pattern.text,
            platform,
            f"it has a seconds field and {platform} fires at most once a minute",
            "use a 5-field pattern",
        )
    if pattern.year != "*":
        raise DialectError(
            pattern.text,
            platform,
            f"it has a year field ({pattern.year!r}) and {platform} has none",
            "drop the year and use a 5-field pattern",
        )
    if timezone not in UTC_NAMES:
        raise DialectError(
            pattern.text,
            platform,
            f"the time zone is {timezone!r} and {platform} reads patterns in UTC only",
            "set timezone to 'UTC' and shift the hours yourself",
        )


def _plain_field(pattern: Pattern, name: str) -> str:
    return ",".join(item.text(name) for item in pattern.items(name))


def _cloudflare_day(pattern: Pattern, platform: str) -> str:
    items = pattern.items("day")
    special = [item for item in items if item.kind != "range"]
    if special and len(items) > 1:
        raise DialectError(
            pattern.text,
            platform,
            f"its day field {pattern.day!r} lists L with other days",
            "use L or nW alone in the day field, or split the pattern",
        )
    return _plain_field(pattern, "day")


def _cloudflare_weekday(pattern: Pattern, platform: str) -> str:
    items = pattern.items("weekday")
    if items[0].kind != "nth":
        return _weekday_list(pattern, names=True)
    if len(items) > 1:
        raise DialectError(
            pattern.text,
            platform,
            f"its weekday field {pattern.weekday!r} holds several '#' or 'L' items",
            "use one nth or last weekday per pattern and split the rest",
        )
    item = items[0]
    name = WEEKDAY_NAMES[item.start]
    return f"{name}L" if item.nth == LAST else f"{name}#{item.nth}"


def _weekday_list(pattern: Pattern, names: bool) -> str:
    """Weekdays as sorted runs over Sunday-first order (``MON-FRI``, ``0,6``)."""
    if not pattern.is_restricted("weekday"):
        return "*"
    days = sorted(pattern.values("weekday"))
    spell = WEEKDAY_NAMES.__getitem__ if names else str
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) > 2:
            parts.append(f"{spell(run[0])}-{spell(run[-1])}")
        else:
            parts.extend(spell(day) for day in run)
    return ",".join(parts)
