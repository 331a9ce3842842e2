"""Vendoring: copy the pure-Python distributions an output needs into it.

Distributions are read from the environment the build runs in, through
`importlib.metadata`, and followed through their requirements. A distribution
is pure when its WHEEL file says `Root-Is-Purelib: true`; those are copied
file by file from their RECORD. The rest (compiled code, editable installs,
ones that are not installed here) cannot travel in the folder and are listed
for `requirements.txt` instead, and the build says so.

Reading that metadata costs more than the rest of a small build, so
`resolve_cached` keeps each resolution in the cache folder, next to the cached
copies of the distributions, for as long as the requirements, the interpreter
and the set of installed distributions stay the same.
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
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib import metadata

logger = logging.getLogger(__name__)

# The build tooling is never vendored: the output carries its runtime instead.
SKIPPED = {"nitro-build"}
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")
# The file list of a cached distribution: "size<TAB>path" per line.
LISTING = ".nitro-files"
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@dataclass(frozen=True)
class Package:
    """A pure distribution to copy: its name as its metadata spells it, its
    version, and a digest of its RECORD (which a reinstall may change)."""

    name: str
    version: str
    record: str

    @property
    def key(self) -> str:
        return normalize(self.name)


@dataclass
class Resolution:
    """What to copy, what to list in requirements.txt, and why; `versions`
    holds every installed distribution met, by normalized name. `compiled`
    says why each installed package that is not pure Python cannot be
    vendored, which matters only to a preset that vendors."""

    pure: list[Package] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    compiled: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Resolution:
        return cls(
            pure=[Package(**package) for package in data["pure"]],
            listed=list(data["listed"]),
            warnings=list(data["warnings"]),
            versions=dict(data["versions"]),
            compiled=list(data.get("compiled", [])),
        )


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


def resolve_cached(requirements: list[str], cache: Path) -> Resolution:
    """`resolve`, kept in the cache folder and reused while neither the
    requirements nor the installed distributions change."""
    wanted = json.dumps(requirements)
    key = hashlib.sha256(wanted.encode()).hexdigest()[:12]
    file = cache / f"resolution-{key}.json"
    installed = installed_fingerprint()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data["requirements"] == requirements and data["installed"] == installed:
            return Resolution.from_dict(data["resolution"])
    except (OSError, ValueError, KeyError, TypeError):
        pass

    resolution = resolve(requirements)
    data = {
        "requirements": requirements,
        "installed": installed,
        "resolution": asdict(resolution),
    }
    cache.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".new-", dir=cache)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    os.replace(temporary, file)
    return resolution


def installed_fingerprint() -> str:
    """A digest of the interpreter and of every distribution on sys.path, by
    the name and modification time of its metadata folder: installing,
    removing, upgrading or reinstalling one changes it."""
    digest = hashlib.sha256(f"{sys.version}\0{sys.prefix}".encode())
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as found:
                folders = sorted(
                    (item.name, item.stat().st_mtime_ns)
                    for item in found
                    if item.name.endswith((".dist-info", ".egg-info"))
                )
        except OSError:
            continue
        # Entries without distributions (the script's or the current folder,
        # which differ between `nitro` and `python -m nitro_build`) are left out.
        if folders:
            digest.update(f"\0{os.path.abspath(entry)}".encode())
        for name, mtime in folders:
            digest.update(f"\0{name}\0{mtime}".encode())
    return digest.hexdigest()


def resolve(requirements: Iterable[str]) -> Resolution:
    """Follow requirements through the installed distributions."""
    from importlib import metadata

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

        spelled = dist.metadata["Name"] or name
        resolution.versions[name] = dist.version
        reason = _not_vendorable(dist)
        if reason:
            resolution.listed.append(f"{spelled}=={dist.version}")
            resolution.compiled.append(
                f"package '{spelled}' {reason}; it is listed in "
                "requirements.txt and must be installed where the output runs"
            )
        elif all(package.key != name for package in resolution.pure):
            record = dist.read_text("RECORD") or ""
            digest = hashlib.sha256(record.encode()).hexdigest()[:12]
            resolution.pure.append(Package(spelled, dist.version, digest))
        pending.extend(_needed(dist, extras))
    return resolution


def copy_distribution(
    package: Package, folder: Path, cache: Path | None = None
) -> tuple[int, int]:
    """Put a distribution's files into folder; returns (files, bytes).

    With a cache folder, the files are copied there once per distribution
    version and hard-linked from there into each build, which costs a small
    fraction of copying them again; where linking fails (another file
    system), they are copied.
    """
    if cache is None:
        return _copy_files(_shipped_files(_installed(package)), folder)

    source = cached_copy(package, cache)
    try:
        return _link_listing(str(source), str(folder))
    except FileNotFoundError as error:
        logger.warning(
            "the vendoring cache entry '%s' is missing a file (%s); making it again",
            source,
            error.filename,
        )
        shutil.rmtree(source, ignore_errors=True)
        fresh = cached_copy(package, cache)
        return _link_listing(str(fresh), str(folder), replace=True)


def _link_listing(source: str, target: str, replace: bool = False) -> tuple[int, int]:
    """Link (or, across file systems, copy) a cached copy's files into target;
    with `replace`, files a failed attempt left there are replaced."""
    # Plain strings and os functions: this runs for every vendored file.
    with open(os.path.join(source, LISTING), encoding="utf-8") as stream:
        files = [line.rstrip("\n").split("\t", 1) for line in stream]
    for sub in sorted({os.path.dirname(name) for _, name in files}):
        os.makedirs(os.path.join(target, sub), exist_ok=True)

    link = True
    for _, name in files:
        origin, destination = f"{source}/{name}", f"{target}/{name}"
        if replace and os.path.lexists(destination):
            os.unlink(destination)
        if link:
            try:
                os.link(origin, destination)
                continue
            except FileNotFoundError:
                raise
            except OSError:
                link = False
        shutil.copyfile(origin, destination)
    return len(files), sum(int(size) for size, _ in files)


def cached_copy(package: Package, cache: Path) -> Path:
    """A private, read-only copy of the distribution's files, with their
    bytecode, made once per distribution version."""
    folder = cache / f"{package.key}-{package.version}-{package.record}"
    if (folder / LISTING).is_file():
        return folder

    dist = _installed(package)
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


def _installed(package: Package) -> metadata.Distribution:
    from importlib import metadata

    return metadata.distribution(package.name)


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
