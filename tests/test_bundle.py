"""Laying out the bundle: sources reach the output through the file store, as
links to private copies of exactly the bytes each build read."""

from __future__ import annotations

import os
from pathlib import Path

from nitro_build.build.bundle import FileStore, copy_sources


def lay_out(project: Path, output: Path, store: Path) -> FileStore:
    files = FileStore(store)
    copy_sources(project, output, [], files)
    files.prune()
    return files


def write_project(root: Path) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "tasks" / "hello.py").write_text("ANSWER = 1\n")
    (root / "tasks" / "other.py").write_text("OTHER = 1\n")
    return root


def test_an_unchanged_source_is_linked_from_a_read_only_copy(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    store = tmp_path / "store"

    lay_out(project, tmp_path / "one", store)
    lay_out(project, tmp_path / "two", store)

    first = (tmp_path / "one" / "tasks" / "hello.py").stat()
    second = (tmp_path / "two" / "tasks" / "hello.py").stat()
    assert first.st_ino == second.st_ino
    assert first.st_ino != (project / "tasks" / "hello.py").stat().st_ino
    assert second.st_mode & 0o222 == 0


def test_editing_a_source_never_changes_a_built_output(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    store = tmp_path / "store"
    lay_out(project, tmp_path / "one", store)

    (project / "tasks" / "hello.py").write_text("ANSWER = 2\n")
    lay_out(project, tmp_path / "two", store)

    assert (tmp_path / "one" / "tasks" / "hello.py").read_text() == "ANSWER = 1\n"
    assert (tmp_path / "two" / "tasks" / "hello.py").read_text() == "ANSWER = 2\n"


def test_a_copy_changed_through_an_output_is_not_shipped(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    store = tmp_path / "store"
    lay_out(project, tmp_path / "one", store)
    shipped = tmp_path / "one" / "tasks" / "hello.py"
    os.chmod(shipped, 0o644)
    shipped.write_text("TAMPERED = 1\n")

    lay_out(project, tmp_path / "two", store)

    assert (tmp_path / "two" / "tasks" / "hello.py").read_text() == "ANSWER = 1\n"


def test_copies_no_build_uses_any_more_are_removed(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project")
    store = tmp_path / "store"
    lay_out(project, tmp_path / "one", store)

    (project / "tasks" / "other.py").unlink()
    lay_out(project, tmp_path / "two", store)

    assert len(list(store.iterdir())) == 1
