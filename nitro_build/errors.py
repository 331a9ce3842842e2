"""The command line's exception family.

Every error a user can cause is a `NitroError`, a `click.ClickException`: the
message says what went wrong, the value in quotes, where, and what would be
accepted. Usage and config errors exit 2; other failures exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import click


class NitroError(click.ClickException):
    """A failure the user can act on; exits 1."""

    exit_code = 1


class UsageError(NitroError):
    """Bad input on the command line; exits 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the project: where it is and what to do."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(NitroError):
    """One or more problems in the config or the tasks; exits 2."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        heading = (
            "the project has a problem"
            if count == 1
            else (f"the project has {count} problems")
        )
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{heading}:\n{lines}")
