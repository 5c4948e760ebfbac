"""A primary and one replica on loopback TCP, for measuring ``SESSIOND_REDIS_WAIT_REPLICAS``.

    .venv/bin/python bench/replicated_redis.py 6390 6391 &
    .venv/bin/python bench/run.py --redis-url redis://127.0.0.1:6390 \\
        --service-env SESSIOND_REDIS_WAIT_REPLICAS=1 --scenarios redis,create_user,set

Runs ``redis-server`` (no persistence) until interrupted; prints the primary's URL once the
replica is in sync.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis


def main(primary_port: int, replica_port: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sessiond-bench-replica-"))
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs = []
    for name, port, extra in (
        ("primary", primary_port, ["--repl-diskless-sync-delay", "0"]),
        ("replica", replica_port, ["--replicaof", "127.0.0.1", str(primary_port)]),
    ):
        (workdir / name).mkdir()
        argv = ["redis-server", "--port", str(port), "--dir", str(workdir / name), *common, *extra]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
    try:
        while True:
            try:
                with redis.Redis(port=replica_port) as replica:
                    if replica.info("replication").get("master_link_status") == "up":
                        break
            except redis.ConnectionError:
                pass
            time.sleep(0.1)
        print(f"redis://127.0.0.1:{primary_port} (replica 127.0.0.1:{replica_port})", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main(int(sys.argv[1]), int(sys.argv[2]))
