"""The project's `.nitro/` folder: what nitro-build keeps between runs.

It holds the dev server's `dev.json` and the build caches, and is made on
first use with a `.gitignore` that keeps all of it out of git. Builds of one
project take turns through a lock on the project folder.
"""

from __future__ import annotations

import logging
import os
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
    since builds share the caches and clean up each other's leftovers.

    The lock is taken on the project folder itself, so a build that fails
    validation has written nothing, not even a lock file.
    """
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return

    handle = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another build of '%s' is running; waiting for it", root)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)
