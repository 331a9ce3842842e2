"""Vendoring: copy the pure-Python distributions an output needs into it.

Distributions are read from the environment the build runs in, through
`importlib.metadata`, and followed through their requirements. A distribution
is pure when its WHEEL file says `Root-Is-Purelib: true`; those are copied
file by file from their RECORD. The rest (compiled code, editable installs,
ones that are not installed here) cannot travel in the folder and are listed
for `requirements.txt` instead, and the build says so.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import logging
import os
import py_compile
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

logger = logging.getLogger(__name__)

# The build tooling is never vendored: the output carries its runtime instead.
SKIPPED = {"nitro-build"}
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
# The file list of a cached distribution: "size<TAB>path" per line.
LISTING = ".nitro-files"
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@dataclass
class Resolution:
    """What to copy, what to list in requirements.txt, and why."""

    pure: list[metadata.Distribution] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_dependencies(root: Path) -> list[str]:
    """The requirement strings a project's pyproject.toml declares, if any."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return []
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        logger.warning("cannot read '%s' for its dependencies: %s", pyproject, error)
        return []
    dependencies = data.get("project", {}).get("dependencies", [])
    return [str(item) for item in dependencies]


def resolve(requirements: Iterable[str]) -> Resolution:
    """Follow requirements through the installed distributions."""
    resolution = Resolution()
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop(0)
        parsed = _NAME.match(requirement)
        if parsed is None:
            resolution.warnings.append(f"requirement '{requirement}' is not readable")
            continue
        name, extras = normalize(parsed[1]), _extras(parsed[2])
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen or name in SKIPPED:
            continue
        seen.add(key)

        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            resolution.listed.append(requirement.split(";")[0].strip())
            resolution.warnings.append(
                f"package '{name}' is not installed in this environment, so it "
                "cannot be vendored; it is listed in requirements.txt"
            )
            continue

        reason = _not_vendorable(dist)
        if reason:
            resolution.listed.append(f"{dist.metadata['Name']}=={dist.version}")
            resolution.warnings.append(
                f"package '{dist.metadata['Name']}' {reason}; it is listed in "
                "requirements.txt and must be installed where the output runs"
            )
        elif all(d is not dist and _key(d) != _key(dist) for d in resolution.pure):
            resolution.pure.append(dist)
        pending.extend(_needed(dist, extras))
    return resolution


def copy_distribution(
    dist: metadata.Distribution, folder: Path, cache: Path | None = None
) -> tuple[int, int]:
    """Put a distribution's files into folder; returns (files, bytes).

    With a cache folder, the files are copied there once per distribution
    version and hard-linked from there into each build, which costs a small
    fraction of copying them again; where linking fails (another file
    system), they are copied.
    """
    if cache is None:
        return _copy_files(_shipped_files(dist), folder)

    source = cached_copy(dist, cache)
    listing = (source / LISTING).read_text(encoding="utf-8").splitlines()
    files = [
        (int(size), Path(name))
        for size, _, name in (n.partition("\t") for n in listing)
    ]
    made: set[Path] = set()
    link = True
    for _, relative in files:
        target = folder / relative
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if link:
            try:
                os.link(source / relative, target)
                continue
            except OSError:
                link = False
        shutil.copyfile(source / relative, target)
    return len(files), sum(size for size, _ in files)


def cached_copy(dist: metadata.Distribution, cache: Path) -> Path:
    """A private, read-only copy of the distribution's files, with their
    bytecode, made once per distribution version."""
    record = dist.read_text("RECORD") or ""
    digest = hashlib.sha256(record.encode()).hexdigest()[:12]
    folder = cache / f"{_key(dist)}-{dist.version}-{digest}"
    if (folder / LISTING).is_file():
        return folder

    cache.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".new-", dir=cache))
    try:
        _copy_files(_shipped_files(dist), building)
        # Bytecode tagged for this interpreter and checked against the source's
        # hash: a server started by the same Python version skips compiling
        # it, any other version ignores it, and copying the output keeps it valid.
        compileall.compile_dir(
            building,
            quiet=2,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
        listing = [
            f"{path.stat().st_size}\t{path.relative_to(building).as_posix()}"
            for path in sorted(building.rglob("*"))
            if path.is_file()
        ]
        for path in building.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        (building / LISTING).write_text("\n".join(listing) + "\n", encoding="utf-8")
        os.rename(building, folder)
    except OSError:
        # Another build filled the same entry first; theirs is as good.
        shutil.rmtree(building, ignore_errors=True)
        if not (folder / LISTING).is_file():
            raise
    return folder


def _shipped_files(dist: metadata.Distribution) -> list[tuple[Path, Path]]:
    """(source, relative target) of every file of a distribution that ships."""
    files = []
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts:
            continue
        if file.suffix == ".pyc":
            continue
        files.append((Path(str(dist.locate_file(file))), Path(*file.parts)))
    return files


def _copy_files(files: list[tuple[Path, Path]], folder: Path) -> tuple[int, int]:
    count = size = 0
    made: set[Path] = set()
    for source, relative in files:
        target = folder / relative
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            shutil.copyfile(source, target)
        except FileNotFoundError:
            logger.debug("'%s' is in RECORD but missing; skipped", source)
            continue
        count += 1
        size += target.stat().st_size
    return count, size


def _not_vendorable(dist: metadata.Distribution) -> str | None:
    wheel = dist.read_text("WHEEL") or ""
    if "root-is-purelib: true" not in wheel.lower():
        return "is not pure Python (it has compiled parts)"
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct.get("dir_info", {}).get("editable"):
        return "is an editable install"
    if not dist.files:
        return "lists no files (no RECORD)"
    return None


def _needed(dist: metadata.Distribution, extras: set[str]) -> list[str]:
    """The requirements of a distribution that apply here."""
    needed = []
    for requirement in dist.requires or ():
        text, _, marker = requirement.partition(";")
        if not marker.strip() or _applies(marker, extras):
            needed.append(text.strip())
    return needed


def _applies(marker: str, extras: set[str]) -> bool:
    try:
        from packaging.markers import Marker
    except ImportError:
        wanted = _EXTRA.findall(marker)
        return any(extra in extras for extra in wanted) if wanted else True
    if not extras:
        return Marker(marker).evaluate({"extra": ""})
    return any(Marker(marker).evaluate({"extra": extra}) for extra in extras)


def _extras(text: str | None) -> set[str]:
    return {normalize(e) for e in (text or "").split(",") if e.strip()}


def _key(dist: metadata.Distribution) -> str:
    return normalize(dist.metadata["Name"] or "")
