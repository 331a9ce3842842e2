"""One server-like process of the cluster tests, started as a subprocess.

It loads a project, coordinates through the lock URL of NITRO_LOCK_URL or of
its config (with a lease of 1.5 s instead of 15), and then either schedules
until SIGTERM:

    python cluster_worker.py schedule ROOT

or prints "ready", waits for a line on standard input and runs one task,
printing its outcome as one line of JSON:

    python cluster_worker.py run ROOT NAME
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from nitro_build.project import load_project
from nitro_build.runtime import TaskRuntime
from nitro_build.runtime.cluster import RedisCluster, lock_url
from nitro_build.runtime.scheduler import Scheduler


async def schedule(runtime: TaskRuntime, cluster: RedisCluster) -> None:
    await cluster.check()
    await Scheduler(runtime, tick_lock=cluster).run_until_signal(grace=2.0)


async def run_once(runtime: TaskRuntime, cluster: RedisCluster, name: str) -> None:
    await cluster.check()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    try:
        result = await runtime.run(name)
    except Exception as error:
        outcome = {"ok": False, "type": type(error).__name__, "error": str(error)}
    else:
        outcome = {"ok": True, "result": result}
    print(json.dumps(outcome), flush=True)


def main(argv: list[str]) -> None:
    mode, root = argv[1], Path(argv[2])
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stderr,
        format="%(process)d %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("asyncio").setLevel(logging.INFO)

    project = load_project(root)
    url = lock_url(project.config.scheduler.get("lock_url"))
    if url is None:
        raise SystemExit("no lock URL: set NITRO_LOCK_URL or scheduler.lock_url")
    # A short lease, so a run killed with its process frees the task quickly.
    cluster = RedisCluster(url, lease_ttl_ms=1500, lease_renew_s=0.5)
    runtime = project.runtime()
    runtime.coordinator = cluster

    if mode == "schedule":
        asyncio.run(schedule(runtime, cluster))
    else:
        asyncio.run(run_once(runtime, cluster, argv[3]))


if __name__ == "__main__":
    main(sys.argv)
