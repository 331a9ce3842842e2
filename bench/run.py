"""Benchmarks: build time and memory, start-up, scheduler lateness, run_task.

    .venv/bin/python bench/run.py            # the full run (about 4 minutes)
    .venv/bin/python bench/run.py --quick    # fewer repeats and ticks

Prints one table per measurement; figures are medians over several runs, and
comparisons are ratios within this run, never against a fixed number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from projects import task_name, write_project

SIZES = (5, 200, 2000)
PRESETS = ("node-server", "cloudflare_module", "vercel")
# Some sandboxes set PYTHONDONTWRITEBYTECODE, which makes every run compile
# nitro-build's own modules from source; an installed package has its bytecode,
# so the measured commands may write and reuse theirs.
ENVIRONMENT = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed_child(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        error = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{' '.join(args)} failed in {cwd}:\n{error}")
    return elapsed, usage.ru_maxrss / 1024


def bench_build(workdir: Path, repeats: int) -> list[dict[str, Any]]:
    rows = []
    command = [sys.executable, "-m", "nitro_build", "build", "--preset"]
    for size in SIZES:
        project = write_project(workdir / f"build-{size}", size)
        for preset in PRESETS:
            first, first_peak = timed_child([*command, preset], project, ENVIRONMENT)
            runs = [
                timed_child([*command, preset], project, ENVIRONMENT)
                for _ in range(repeats)
            ]
            rows.append(
                {
                    "preset": preset,
                    "tasks": size,
                    "first_s": first,
                    "median_s": statistics.median(t for t, _ in runs),
                    "peak_mib": max(first_peak, *(m for _, m in runs)),
                }
            )
    return rows


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def time_to_first_response(index: Path, cwd: Path) -> float:
    """Seconds from spawning the built server to its first HTTP answer."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-I", str(index)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 30:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(
                        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    if conn.recv(16).startswith(b"HTTP/1.1"):
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)
        raise SystemExit(f"the server in {cwd} did not answer within 30 s")
    finally:
        server.terminate()
        server.wait(timeout=10)


def bench_startup(workdir: Path, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for size in SIZES:
        project = workdir / f"build-{size}"
        if not project.exists():
            write_project(project, size)
        subprocess.run(
            [sys.executable, "-m", "nitro_build", "build", "--preset", "node-server"],
            cwd=project,
            check=True,
            capture_output=True,
        )
        output = project / ".output"
        index = output / "server" / "index.py"
        serve = [time_to_first_response(index, output) for _ in range(repeats)]
        run = [
            timed_child(
                [sys.executable, "-I", str(index), "task", "run", task_name(0)], output
            )[0]
            for _ in range(repeats)
        ]
        rows.append(
            {
                "tasks": size,
                "serve_median_s": statistics.median(serve),
                "task_run_median_s": statistics.median(run),
            }
        )
    return rows


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure_lateness(ticks: int) -> list[float]:
    from nitro_build import define_task
    from nitro_build.runtime import TaskEntry, TaskRuntime
    from nitro_build.runtime.scheduler import Scheduler

    late: list[float] = []
    done = asyncio.Event()

    @define_task
    async def probe(event: Any) -> None:
        late.append(time.time() * 1000 - event.payload["scheduledTime"])
        if len(late) >= ticks:
            done.set()

    runtime = TaskRuntime(
        [TaskEntry("probe", handler="bench:probe")],
        schedules={"* * * * * *": ["probe"]},
    )
    runtime._loaded["probe"] = probe
    scheduler = Scheduler(runtime)
    await scheduler.start()
    await asyncio.wait_for(done.wait(), timeout=ticks + 10)
    await scheduler.stop(grace=1)
    return late


def bench_lateness(ticks: int) -> dict[str, float]:
    import logging

    logging.disable(logging.INFO)
    late = asyncio.run(measure_lateness(ticks))
    logging.disable(logging.NOTSET)
    return {
        "ticks": len(late),
        "median_ms": statistics.median(late),
        "p99_ms": percentile(late, 0.99),
        "max_ms": max(late),
        "min_ms": min(late),
    }


async def measure_run_task(calls: int, callers: int) -> dict[str, float]:
    from nitro_build import define_task
    from nitro_build.runtime import TaskEntry, TaskRuntime

    runs = 0

    @define_task
    async def quick(event: Any) -> int:
        return 1

    @define_task
    async def shared(event: Any) -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        return runs

    runtime = TaskRuntime([TaskEntry("quick"), TaskEntry("shared")])
    runtime._loaded.update(quick=quick, shared=shared)

    started = time.perf_counter()
    for _ in range(calls):
        await runtime.run("quick")
    per_call = (time.perf_counter() - started) / calls

    started = time.perf_counter()
    results = await asyncio.gather(*(runtime.run("shared") for _ in range(callers)))
    together = time.perf_counter() - started
    return {
        "per_call_us": per_call * 1e6,
        "callers": callers,
        "callers_total_ms": together * 1000,
        "runs": runs,
        "all_got_result": float(set(results) == {1}),
    }


def bench_run_task(repeats: int) -> dict[str, float]:
    import logging

    logging.disable(logging.INFO)
    samples = [asyncio.run(measure_run_task(10_000, 1_000)) for _ in range(repeats)]
    logging.disable(logging.NOTSET)
    merged = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    return merged


def print_tables(results: dict[str, Any]) -> None:
    print(f"\nmachine: {results['machine']}\n")

    print(
        "build (wall time of `nitro build`: the first, with cold caches, and the "
        "median of the next runs; peak memory of any run)"
    )
    print(
        f"{'preset':<18}{'tasks':>6}{'first s':>9}{'median s':>10}"
        f"{'peak MiB':>10}{'x 200':>8}"
    )
    base = {
        row["preset"]: row["median_s"]
        for row in results["build"]
        if row["tasks"] == 200
    }
    for row in results["build"]:
        ratio = row["median_s"] / base[row["preset"]]
        print(
            f"{row['preset']:<18}{row['tasks']:>6}{row['first_s']:>9.3f}"
            f"{row['median_s']:>10.3f}"
            f"{row['peak_mib']:>10.1f}{ratio:>8.2f}"
        )

    print("\nstart-up of the built server (median seconds)")
    print(f"{'tasks':>6}{'serve':>10}{'x 5':>7}{'task run':>10}{'x 5':>7}")
    first = results["startup"][0]
    for row in results["startup"]:
        print(
            f"{row['tasks']:>6}{row['serve_median_s']:>10.3f}"
            f"{row['serve_median_s'] / first['serve_median_s']:>7.2f}"
            f"{row['task_run_median_s']:>10.3f}"
            f"{row['task_run_median_s'] / first['task_run_median_s']:>7.2f}"
        )

    late = results["lateness"]
    print(f"\nscheduler lateness over {late['ticks']} ticks of '* * * * * *' (ms)")
    print(
        f"median {late['median_ms']:.2f}  p99 {late['p99_ms']:.2f}  "
        f"max {late['max_ms']:.2f}  min {late['min_ms']:.2f}"
    )

    cost = results["run_task"]
    print("\nrun_task")
    print(f"one caller at a time: {cost['per_call_us']:.1f} us per call")
    print(
        f"{cost['callers']:.0f} concurrent callers of one 10 ms task: "
        f"{cost['callers_total_ms']:.1f} ms in all, {cost['runs']:.0f} run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--only", choices=("build", "startup", "lateness", "run_task"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()

    repeats = 3 if options.quick else 5
    ticks = 10 if options.quick else 60
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.platform(terse=True)}"
    }
    workdir = Path(tempfile.mkdtemp(prefix="nitro-bench-"))
    try:
        steps = {
            "build": lambda: bench_build(workdir, repeats),
            "startup": lambda: bench_startup(workdir, repeats),
            "lateness": lambda: bench_lateness(ticks),
            "run_task": lambda: bench_run_task(repeats),
        }
        for name, step in steps.items():
            if options.only in (None, name):
                print(f"measuring {name} ...", file=sys.stderr)
                results[name] = step()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if options.only is None:
        print_tables(results)
    else:
        print(json.dumps(results, indent=2))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
