from pathlib import Path

from nitro_build.discovery import discover_tasks, task_name


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")


def test_names_come_from_paths(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "hello.py",
        "db/migrate.py",
        "db/index.py",
        "cms/pages/update.py",
        "cache.clear.py",
    )

    names = [found.name for found in discover_tasks(tmp_path)]

    assert names == [
        "cache.clear",
        "cms:pages:update",
        "db:index",
        "db:migrate",
        "hello",
    ]


def test_underscore_and_dot_entries_are_skipped(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "db/__init__.py",
        "db/_helpers.py",
        "db/.hidden.py",
        "_private/secret.py",
        ".cache/stale.py",
        "__pycache__/migrate.cpython-311.py",
        "db/notes.txt",
        "db/migrate.pyc",
        "db/migrate.py",
    )

    found = discover_tasks(tmp_path)

    assert [task.name for task in found] == ["db:migrate"]
    assert found[0].file == tmp_path / "db" / "migrate.py"


def test_missing_folder_has_no_tasks(tmp_path: Path) -> None:
    assert discover_tasks(tmp_path / "nope") == []


def test_task_name_of_nested_index() -> None:
    assert task_name(Path("db/index.py")) == "db:index"
    assert task_name(Path("a/b/c.py")) == "a:b:c"


def test_discovery_imports_nothing(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("raise SystemExit('imported!')\n")

    assert [task.name for task in discover_tasks(tmp_path)] == ["boom"]
