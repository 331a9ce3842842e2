"""Lay out the bundle: the runnable code an output carries.

The bundle folder of a preset receives three parts: the task runtime (the
`nitro_build` package's `__init__.py` and `runtime/`, never the build
tooling), the user's sources, and the pure-Python distributions both need.
The user's sources are the project's `src_dir` without hidden files and
folders (version control, caches, `.env` files), virtual environments,
`__pycache__`, `node_modules` and the output folder itself.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import vendor

logger = logging.getLogger(__name__)

SKIPPED_FOLDERS = {"__pycache__", "node_modules"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Part:
    """A folder the bundle filled: where it is in the output, and its size."""

    path: str
    files: int
    size: int


@dataclass
class BundleReport:
    """What laying out the bundle copied, listed and warned about, and the
    version of every installed distribution the packages were resolved from."""

    parts: list[Part] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


def runtime_source() -> Path:
    """The `nitro_build` package folder the runtime is copied from."""
    return Path(__file__).resolve().parent.parent


def copy_runtime(target: Path, exclude: Iterable[str] = ()) -> tuple[int, int]:
    """Copy `nitro_build/__init__.py` and `runtime/` into target/nitro_build."""
    package = runtime_source()
    skipped = set(exclude)
    (target / "nitro_build" / "runtime").mkdir(parents=True, exist_ok=True)
    files = [package / "__init__.py"]
    files += sorted(
        p for p in (package / "runtime").glob("*.py") if p.name not in skipped
    )

    size = 0
    for file in files:
        destination = target / "nitro_build" / file.relative_to(package)
        shutil.copyfile(file, destination)
        size += destination.stat().st_size
    return len(files), size


def copy_sources(source: Path, target: Path, skip: Iterable[Path]) -> tuple[int, int]:
    """Copy the user's sources, leaving out what never ships."""
    skipped = {str(path.resolve()) for path in skip}
    count = size = 0
    # Plain strings and os functions: this loop runs once per source file.
    for folder, subfolders, files in os.walk(source):
        subfolders[:] = [
            name
            for name in sorted(subfolders)
            if not _skipped_folder(os.path.join(folder, name), skipped)
        ]
        destination = os.path.join(target, os.path.relpath(folder, source))
        os.makedirs(destination, exist_ok=True)
        for name in files:
            if name.startswith(".") or name.endswith(SKIPPED_SUFFIXES):
                continue
            copied = os.path.join(destination, name)
            shutil.copyfile(os.path.join(folder, name), copied)
            count += 1
            size += os.stat(copied).st_size
    return count, size


def vendor_packages(
    requirements: Iterable[str], target: Path | None, cache: Path | None = None
) -> tuple[Part | None, vendor.Resolution]:
    """Copy the pure distributions into target (through the cache folder, if
    given); a target of None lists them all for requirements.txt instead."""
    requirements = list(requirements)
    if cache is None:
        resolution = vendor.resolve(requirements)
    else:
        resolution = vendor.resolve_cached(requirements, cache)
    if target is None:
        resolution.listed[:0] = [f"{p.name}=={p.version}" for p in resolution.pure]
        resolution.pure = []
        return None, resolution

    target.mkdir(parents=True, exist_ok=True)
    count = size = 0
    for package in resolution.pure:
        files, nbytes = vendor.copy_distribution(package, target, cache)
        logger.debug("vendored %s %s (%d files)", package.name, package.version, files)
        count += files
        size += nbytes
    return Part("", count, size), resolution


def _skipped_folder(path: str, skipped: set[str]) -> bool:
    name = os.path.basename(path)
    if name.startswith(".") or name in SKIPPED_FOLDERS:
        return True
    if os.path.exists(os.path.join(path, "pyvenv.cfg")):
        return True
    return os.path.realpath(path) in skipped
