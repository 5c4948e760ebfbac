"""The Redis connection's own CPU: what ``storage.multiplex`` costs per call, without HTTP.

64 concurrent callers on uvloop each run one ``execute`` and one two-command
``execute_many`` in a loop; the process's CPU time per such pair is printed. Redis runs in
another process, so the figure is the client's cost alone.

``--compare PATH`` loads a second copy of the module from another tree (a git worktree of an
older commit) and alternates the two, round after round, so the host's drift hits both:

    python bench/connection_cpu.py --redis-url redis://127.0.0.1:6379 \\
        --compare ../before/storage/multiplex.py
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from pathlib import Path
from types import ModuleType

import uvloop

HERE = Path(__file__).resolve().parent.parent / "storage" / "multiplex.py"


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def cpu_per_pair(module: ModuleType, url: str, pairs: int, callers: int) -> float:
    """Microseconds of this process's CPU per (execute + two-command execute_many)."""
    redis = module.MultiplexedRedis(url)
    await redis.execute("PING")  # connected before the clock starts
    each = pairs // callers

    async def caller() -> None:
        for _ in range(each):
            await redis.execute("GET", "bench:connection:a")
            await redis.execute_many(("GET", "bench:connection:a"), ("GET", "bench:connection:b"))

    started = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    used = time.process_time() - started
    await redis.close()
    return used / (each * callers) * 1e6


async def main(args: argparse.Namespace) -> None:
    modules = [("this tree", load("multiplex_here", HERE))]
    if args.compare:
        modules.insert(0, ("compared", load("multiplex_compared", Path(args.compare))))
    for round_ in range(1, args.rounds + 1):
        for label, module in modules:
            cpu = await cpu_per_pair(module, args.redis_url, args.pairs, args.callers)
            print(f"round {round_} {label:>9}: {cpu:6.1f} µs of client CPU per pair")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--compare", default="", help="another tree's storage/multiplex.py")
    parser.add_argument("--pairs", type=int, default=40_000)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    uvloop.run(main(parser.parse_args()))
