"""Shared helpers: fixture projects copied to a temporary folder."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


@pytest.fixture
def copy_fixture(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copy a project from fixtures/ into tmp_path and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / Path(name).name
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


@pytest.fixture(autouse=True)
def forget_task_modules() -> Iterator[None]:
    """Each test imports task files afresh, as a new process would."""
    before = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("nitro_tasks", "tasks")):
            del sys.modules[name]
    sys.path[:] = path
