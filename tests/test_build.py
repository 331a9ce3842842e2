"""The build pipeline: what it writes, what it refuses, and what a failed build
leaves behind (the previous output, byte for byte)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO, free_port, tree_hash

from nitro_build.build import build_project
from nitro_build.build.presets import PresetError
from nitro_build.errors import ConfigError
from nitro_build.state import build_lock

TASK = "from nitro_build import define_task\n\ntask = define_task(run=print)\n"
BROKEN_TASK = "from nitro_build import define_task\n\nraise RuntimeError('boom')\n"


def siblings(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.parent.iterdir())


def test_example_builds_the_server_layout(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")

    result = build_project(root)

    output = root / ".output"
    assert result.output == output
    assert (output / ".nitro-output").is_file()
    assert (output / "server" / "index.py").is_file()
    assert (output / "server" / "app" / "tasks" / "db" / "migrate.py").is_file()
    assert not (output / "requirements.txt").exists()
    info = json.loads((output / "nitro.json").read_text())
    assert info["preset"] == "node-server"
    assert info["commands"]["preview"] == "python server/index.py"
    assert info["tasks"]["echo:payload"] == {
        "description": "Returns the provided payload"
    }
    assert info["scheduledTasks"] == [
        {"cron": "* * * * *", "tasks": ["cms:update"]},
        {"cron": "0 3 * * MON-FRI", "tasks": ["db:migrate"]},
    ]
    manifest = json.loads((output / "server" / "manifest.json").read_text())
    assert manifest["tasks"][0] == {
        "name": "cms:update",
        "file": "tasks/cms/update.py",
        "handler": None,
        "description": "Update CMS content",
    }


def test_summary_names_preset_counts_files_and_time(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    summary = build_project(copy_fixture("example")).summary()

    first, *lines = summary.splitlines()
    assert first.startswith("Built preset 'node-server' into ")
    assert "3 tasks, 2 schedules" in first
    assert " s: " in first
    assert any(line.split()[0] == "nitro.json" for line in lines)
    assert any(line.split()[0] == "server/_vendor" for line in lines)


@pytest.mark.parametrize("preset", ["bun", "deno-server"])
def test_other_server_presets_differ_in_the_preset_name(copy_fixture, preset) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")

    build_project(root, preset=preset)

    info = json.loads((root / ".output" / "nitro.json").read_text())
    manifest = json.loads((root / ".output" / "server" / "manifest.json").read_text())
    assert info["preset"] == manifest["preset"] == preset


def test_a_broken_task_leaves_the_previous_output_byte_for_byte(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    build_project(root)
    before = tree_hash(root / ".output")
    names = siblings(root / ".output")

    (root / "tasks" / "db" / "migrate.py").write_text(BROKEN_TASK)
    with pytest.raises(ConfigError) as caught:
        build_project(root)

    assert "tasks/db/migrate.py:3" in str(caught.value)
    assert "RuntimeError: boom" in str(caught.value)
    assert tree_hash(root / ".output") == before
    assert siblings(root / ".output") == names


def test_nothing_is_written_when_validation_fails(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    (root / "tasks" / "db" / "migrate.py").write_text(BROKEN_TASK)
    before = siblings(root / "tasks")

    with pytest.raises(ConfigError):
        build_project(root, output=root / "deep" / "out")

    assert not (root / "deep").exists()
    assert not (root / ".output").exists()
    assert siblings(root / "tasks") == before


def test_every_problem_is_reported_at_once(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    (root / "tasks" / "db" / "migrate.py").write_text(BROKEN_TASK)
    (root / "tasks" / "echo" / "payload.py").write_text("def broken(:\n")

    with pytest.raises(ConfigError) as caught:
        build_project(root, output=root)

    problems = [str(problem) for problem in caught.value.problems]
    assert len(problems) == 3
    assert "is the project folder" in problems[0]
    assert any("tasks/db/migrate.py" in problem for problem in problems)
    assert any("tasks/echo/payload.py:1" in problem for problem in problems)


def test_the_project_folder_is_refused_as_output(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")

    with pytest.raises(ConfigError, match="is the project folder or contains it"):
        build_project(root, output=root)
    with pytest.raises(ConfigError, match="is the project folder or contains it"):
        build_project(root, output=root.parent)

    assert sorted(p.name for p in root.iterdir()) == ["nitro.config.toml", "tasks"]


def test_a_folder_holding_sources_is_refused_as_output(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    theirs = root / "lib"
    theirs.mkdir()
    (theirs / "module.py").write_text("VALUE = 1\n")

    with pytest.raises(ConfigError, match="holds files that no build wrote"):
        build_project(root, output=theirs)
    with pytest.raises(ConfigError, match="contains the sources"):
        build_project(root, output=root / "tasks")
    with pytest.raises(ConfigError, match="inside the tasks folder"):
        build_project(root, output=root / "tasks" / "out")

    assert (theirs / "module.py").read_text() == "VALUE = 1\n"


def test_an_empty_folder_and_an_earlier_output_are_replaced(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    (root / "out").mkdir()

    build_project(root, output=root / "out")
    (root / "out" / "stale.txt").write_text("from before")
    build_project(root, output=root / "out")

    assert (root / "out" / "nitro.json").is_file()
    assert not (root / "out" / "stale.txt").exists()
    assert [n for n in siblings(root / "out") if n.startswith(".out")] == []


def test_unknown_preset_lists_the_known_ones(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")

    with pytest.raises(PresetError) as caught:
        build_project(root, preset="node-sever")

    message = str(caught.value.message)
    assert "preset 'node-sever' is not known; did you mean 'node-server'?" in message
    assert "known presets: " in message
    assert "bun" in message
    assert "deno-server" in message
    assert "_server" not in message
    assert caught.value.exit_code == 2
    assert not (root / ".output").exists()


def test_sources_ship_without_vcs_caches_venvs_and_outputs(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    for name in (
        ".git/HEAD",
        ".env",
        "__pycache__/x.pyc",
        "venv/pyvenv.cfg",
        ".nitro/x",
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    (root / "helpers" / "text.py").parent.mkdir()
    (root / "helpers" / "text.py").write_text("X = 1\n")
    build_project(root)

    build_project(root)

    app = root / ".output" / "server" / "app"
    shipped = sorted(p.relative_to(app).as_posix() for p in app.rglob("*"))
    assert "helpers/text.py" in shipped
    assert "nitro.config.toml" in shipped
    assert not [
        path
        for path in shipped
        if path.startswith((".git", ".env", "__pycache__", "venv", ".output", ".nitro"))
    ]


def test_packages_that_are_not_pure_go_to_requirements(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "example"\nversion = "1"\n'
        'dependencies = ["attrs", "markupsafe>=2", "not-installed-anywhere"]\n'
    )

    result = build_project(root)

    output = root / ".output"
    assert (output / "server" / "_vendor" / "attrs").is_dir()
    assert not (output / "server" / "_vendor" / "markupsafe").exists()
    requirements = (output / "requirements.txt").read_text().splitlines()
    assert [line.split("==")[0].lower() for line in requirements] == [
        "markupsafe",
        "not-installed-anywhere",
    ]
    assert any("'MarkupSafe' is not pure Python" in w for w in result.warnings)
    assert any(
        "'not-installed-anywhere' is not installed" in w for w in result.warnings
    )
    assert "warning: package 'MarkupSafe'" in result.summary()


def test_a_preset_that_vendors_nothing_lists_compiled_packages_quietly(
    copy_fixture,
) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "example"\nversion = "1"\ndependencies = ["markupsafe>=2"]\n'
    )
    (root / "nitro.config.toml").write_text(
        (root / "nitro.config.toml").read_text() + '\n[vercel]\nplan = "pro"\n'
    )

    result = build_project(root, preset="vercel")

    requirements = (root / ".output" / "requirements.txt").read_text()
    assert "MarkupSafe==" in requirements
    assert result.warnings == []


def test_vendored_packages_are_linked_from_a_cache(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")

    build_project(root)
    build_project(root)

    vendored = root / ".output" / "server" / "_vendor" / "croniter" / "__init__.py"
    cached = list((root / ".nitro" / "cache" / "vendor").glob("croniter-*"))
    assert len(cached) == 1
    assert (
        vendored.stat().st_ino == (cached[0] / "croniter" / "__init__.py").stat().st_ino
    )
    assert not os.access(vendored, os.W_OK) or os.geteuid() == 0
    assert vendored.stat().st_mode & 0o222 == 0


def test_an_interrupted_swap_is_undone_by_the_next_build(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    build_project(root)
    before = tree_hash(root / ".output")
    # A build killed between its two renames leaves the old output aside and
    # its staging folder behind.
    (root / ".output").rename(root / ".output.old-dead1234")
    (root / ".output.new-dead5678").mkdir()
    (root / "tasks" / "db" / "migrate.py").write_text(BROKEN_TASK)

    with pytest.raises(ConfigError):
        build_project(root)
    restored = tree_hash(root / ".output")
    (root / "tasks" / "db" / "migrate.py").write_text(TASK)
    build_project(root)

    assert restored == before
    assert [n for n in siblings(root / ".output") if n.startswith(".output.")] == []
    assert (root / ".output" / "nitro.json").is_file()


def test_preview_runs_the_output_and_forwards_sigterm(copy_fixture) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    build_project(root)
    port = free_port()

    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "nitro_build", "--root", str(root), "preview"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listing = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            try:
                listing = httpx.get(f"http://127.0.0.1:{port}/_nitro/tasks", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    assert listing is not None, process.stderr.read() if process.stderr else ""
    assert listing.status_code == 404
    assert code == 0


def test_the_wheel_carries_presets_and_templates(tmp_path: Path, copy_fixture) -> None:  # type: ignore[no-untyped-def]
    """Build the wheel, install it into a fresh venv (its dependencies come
    from this environment), and build the example from there."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"),
            *("-w", str(wheels), str(REPO)),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = wheels.glob("nitro_build-*.whl")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        timeout=60,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install"),
            *("-q", "--no-deps", "--no-index", str(wheel)),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "dependencies.pth").write_text("\n".join(here) + "\n")
    root = copy_fixture("example")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}

    done = subprocess.run(
        [str(python), "-m", "nitro_build", "--root", str(root), "build"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environment,
    )
    where = subprocess.run(
        [str(python), "-c", "import nitro_build.build.presets as p; print(p.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
    ).stdout

    assert done.returncode == 0, done.stderr
    assert where.startswith(site)
    assert Path(site, "nitro_build", "presets", "node-server.toml").is_file()
    assert Path(site, "nitro_build", "templates", "server", "index.py.j2").is_file()
    assert (root / ".output" / "server" / "index.py").is_file()


def test_a_build_waits_for_the_build_already_running(copy_fixture, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = copy_fixture("example")
    log = tmp_path / "build.log"
    command = [sys.executable, "-m", "nitro_build", "--root", str(root), "build"]

    with build_lock(root), log.open("w") as stream:
        build = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stream)
        deadline = time.monotonic() + 60
        while "another build of" not in log.read_text():
            assert build.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the build never said it waits"
            time.sleep(0.05)
        assert build.poll() is None
        assert not (root / ".output").exists()

    assert build.wait(timeout=120) == 0, log.read_text()
    assert (root / ".output" / "server" / "manifest.json").is_file()
    assert (root / ".nitro" / ".gitignore").read_text().endswith("*\n")
