"""The project's `.nitro/` folder: what nitro-build keeps between runs.

It holds the dev server's `dev.json`, the build caches and the build lock. It
is made on first use with a `.gitignore` that keeps all of it out of git.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

FOLDER = ".nitro"


def state_folder(root: Path) -> Path:
    """The project's `.nitro/` folder, made if missing."""
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Written by nitro-build: caches and run files.\n*\n")
    return folder


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Hold the project's build lock: one build at a time lays out files,
    since builds share the caches and clean up each other's leftovers."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return

    with open(state_folder(root) / "build.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another build of '%s' is running; waiting for it", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
