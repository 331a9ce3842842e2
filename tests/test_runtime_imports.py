"""The runtime ships inside every build output, so it must need nothing else."""

import json
import subprocess
import sys

from conftest import REPO

PROBE = """
import json, sys
before = set(sys.modules)
import nitro_build
import nitro_build.runtime
{extra}
loaded = {{name.split('.')[0] for name in set(sys.modules) - before}}
outside = sorted(
    name for name in loaded
    if name not in sys.stdlib_module_names
    and name not in ('nitro_build', '_distutils_hack')
)
print(json.dumps(outside))
"""


def imported_outside_stdlib(extra: str = "") -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(extra=extra)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_runtime_imports_only_the_standard_library() -> None:
    assert imported_outside_stdlib() == []


def test_runtime_modules_besides_scheduling_import_only_the_standard_library() -> None:
    modules = ["errors", "task", "loader", "runner"]
    extra = "\n".join(f"import nitro_build.runtime.{name}" for name in modules)

    assert imported_outside_stdlib(extra) == []


def test_task_runtime_does_not_import_the_build_tooling() -> None:
    extra = "import nitro_build.runtime.runner\nassert 'click' not in sys.modules"

    assert imported_outside_stdlib(extra) == []


def test_task_files_and_task_checks_load_no_event_loop() -> None:
    extra = (
        "from nitro_build import define_task\n"
        "from nitro_build.runtime.loader import TaskCatalog\n"
        "assert 'asyncio' not in sys.modules\n"
        "from nitro_build.runtime import TaskOutcome, TaskRuntime\n"
        "assert issubclass(TaskRuntime, TaskCatalog) and TaskOutcome\n"
        "import nitro_build.runtime as runtime\n"
        "assert all(getattr(runtime, name) for name in runtime.__all__)"
    )

    assert imported_outside_stdlib(extra) == []
