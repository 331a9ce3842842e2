"""Vendoring: the resolution kept in the cache folder is reused only while the
requirements and the installed distributions stay the same."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from nitro_build.build import build_project, vendor


def install(site: Path, name: str, version: str) -> Path:
    """A minimal pure-Python distribution installed into site."""
    for old in site.glob(f"{name}-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    (site / name).mkdir(exist_ok=True)
    (site / name / "__init__.py").write_text(f"VERSION = {version!r}\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
    (info / "RECORD").write_text(
        f"{name}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
    )
    return info


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.setattr(sys, "path", [str(folder), *sys.path])
    return folder


def test_a_cached_resolution_is_reused(site: Path, tmp_path: Path) -> None:
    install(site, "nitrofake", "1.0")
    cache = tmp_path / "cache"

    first = vendor.resolve_cached(["nitrofake"], cache)
    second = vendor.resolve_cached(["nitrofake"], cache)

    assert [(p.name, p.version) for p in first.pure] == [("nitrofake", "1.0")]
    assert second == first
    assert len(list(cache.glob("resolution-*.json"))) == 1


def test_an_upgrade_or_a_reinstall_is_resolved_again(
    site: Path, tmp_path: Path
) -> None:
    install(site, "nitrofake", "1.0")
    cache = tmp_path / "cache"
    before = vendor.resolve_cached(["nitrofake"], cache)

    install(site, "nitrofake", "2.0")
    upgraded = vendor.resolve_cached(["nitrofake"], cache)
    info = install(site, "nitrofake", "2.0")
    (info / "RECORD").write_text("nitrofake/__init__.py,,\n")
    os.utime(info, ns=(0, 0))
    reinstalled = vendor.resolve_cached(["nitrofake"], cache)

    assert [p.version for p in before.pure] == ["1.0"]
    assert [p.version for p in upgraded.pure] == ["2.0"]
    assert reinstalled.pure[0].record != upgraded.pure[0].record


def test_other_requirements_are_resolved_on_their_own(
    site: Path, tmp_path: Path
) -> None:
    install(site, "nitrofake", "1.0")
    cache = tmp_path / "cache"
    vendor.resolve_cached(["nitrofake"], cache)

    missing = vendor.resolve_cached(["nitrofake", "nitro-not-installed"], cache)

    assert missing.listed == ["nitro-not-installed"]
    assert [p.name for p in missing.pure] == ["nitrofake"]


def test_a_damaged_cache_entry_is_made_again(copy_fixture) -> None:
    root = copy_fixture("example")
    build_project(root)
    cached = next(
        path
        for path in (root / ".nitro" / "cache" / "vendor").iterdir()
        if path.name.startswith("croniter-")
    )
    damaged = cached / "croniter" / "croniter.py"
    damaged.chmod(0o644)
    damaged.unlink()

    build_project(root)

    import croniter

    vendored = root / ".output" / "server" / "_vendor" / "croniter" / "croniter.py"
    installed = Path(croniter.__file__).parent / "croniter.py"
    assert vendored.read_bytes() == installed.read_bytes()
    assert damaged.read_bytes() == installed.read_bytes()
