"""Lay out the bundle: the runnable code an output carries.

The bundle folder of a preset receives three parts: the task runtime (the
`nitro_build` package's `__init__.py` and `runtime/`, never the build
tooling), the user's sources, and the pure-Python distributions both need.
The user's sources are the project's `src_dir` without hidden files and
folders (version control, caches, `.env` files), virtual environments,
`__pycache__`, `node_modules` and the output folder itself.

Files of the runtime and the sources are placed through a `FileStore`: every
build reads each file afresh, and an output file is a hard link to a private
copy of exactly those bytes, so an unchanged file costs a link instead of a
new file (and the output it replaces frees no file either).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
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


class FileStore:
    """Read-only copies of files by content, hard-linked into outputs.

    A stored copy is linked only after its bytes compare equal to the file's
    bytes of this build, so a copy changed through an output's link is
    replaced, never shipped. Where linking fails (the output on another file
    system), files are written as plain copies from then on.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.used: set[str] = set()
        self.linking = True

    def place(self, data: bytes, target: str) -> None:
        """Write data into the new file target."""
        if self.linking:
            name = hashlib.sha256(data).hexdigest()[:32]
            stored = os.path.join(self.folder, name)
            try:
                if _read_regular(stored, missing_ok=True) != data:
                    self._store(stored, data)
                os.link(stored, target)
                self.used.add(name)
                return
            except OSError as error:
                logger.debug("copying files instead of linking them: %s", error)
                self.linking = False
        with open(target, "wb") as stream:
            stream.write(data)

    def prune(self) -> None:
        """Remove the stored copies this build did not use."""
        if not self.linking or not self.used:
            return
        with os.scandir(self.folder) as entries:
            unused = [e.path for e in entries if e.name not in self.used]
        for path in unused:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue

    def _store(self, stored: str, data: bytes) -> None:
        os.makedirs(self.folder, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".new-", dir=self.folder)
        try:
            with open(fd, "wb") as stream:
                stream.write(data)
            os.chmod(temporary, 0o444)
            os.replace(temporary, stored)
        except BaseException:
            os.unlink(temporary)
            raise


def runtime_source() -> Path:
    """The `nitro_build` package folder the runtime is copied from."""
    return Path(__file__).resolve().parent.parent


def copy_runtime(
    target: Path, exclude: Iterable[str] = (), store: FileStore | None = None
) -> tuple[int, int]:
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
        data = file.read_bytes()
        _place(data, str(destination), store)
        size += len(data)
    return len(files), size


def copy_sources(
    source: Path, target: Path, skip: Iterable[Path], store: FileStore | None = None
) -> tuple[int, int]:
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
            data = _read_regular(os.path.join(folder, name))
            if data is None:
                logger.debug("'%s' is not a regular file; skipped", name)
                continue
            _place(data, os.path.join(destination, name), store)
            count += 1
            size += len(data)
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

    resolution.warnings += resolution.compiled
    target.mkdir(parents=True, exist_ok=True)
    count = size = 0
    for package in resolution.pure:
        files, nbytes = vendor.copy_distribution(package, target, cache)
        logger.debug("vendored %s %s (%d files)", package.name, package.version, files)
        count += files
        size += nbytes
    return Part("", count, size), resolution


def _place(data: bytes, target: str, store: FileStore | None) -> None:
    if store is not None:
        store.place(data, target)
        return
    with open(target, "wb") as stream:
        stream.write(data)


def _read_regular(path: str, missing_ok: bool = False) -> bytes | None:
    """The bytes of a regular file; None for a pipe, socket or device (opened
    without blocking, so a pipe cannot hang the build), or a missing file
    when missing_ok."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    with open(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return stream.read()


def _skipped_folder(path: str, skipped: set[str]) -> bool:
    name = os.path.basename(path)
    if name.startswith(".") or name in SKIPPED_FOLDERS:
        return True
    if os.path.exists(os.path.join(path, "pyvenv.cfg")):
        return True
    return os.path.realpath(path) in skipped
