"""Child processes of the benchmark: start each in its own process group, always reap them.

Every server the benchmark starts (redis-server, the baseline app, the service, wrk, the
Python load generator) runs in a new session (``start_new_session=True``), so a Ctrl-C in the
terminal reaches only the runner, whose ``finally`` then stops each group: SIGTERM, a bounded
wait, SIGKILL. Every wait in this module has a deadline.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, NamedTuple

import redis

from storage import keys, server_config


class ChildError(RuntimeError):
    """A child process failed to start, died early, or never became ready."""


class Child:
    """One child process in its own process group, with its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, max_chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = self.log_path.read_bytes().decode(errors="replace")
            return text[-max_chars:]
        return ""

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM the group, wait up to ``grace_s``, then SIGKILL it and any descendant.

        Descendants are noted first: worker processes may run in process groups of their
        own, and would otherwise outlive a leader killed before it could stop them.
        """
        try:
            spawned = descendants(self.proc.pid) if self.alive else {}
            if self.alive:
                _signal_group(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    _signal_group(self.proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=grace_s)
            _signal_group(self.proc.pid, signal.SIGKILL)
            _reap_strays(spawned, grace_s)
            return self.proc.returncode
        finally:
            self._log.close()


def _reap_strays(spawned: Mapping[int, int], grace_s: float) -> None:
    """Give descendants noted earlier ``grace_s`` to exit, then SIGKILL the ones left.

    A pid counts as the same process only while its start time matches (no pid reuse).
    """
    deadline = time.monotonic() + grace_s
    while True:
        live = _processes()
        left = [
            pid for pid, start in spawned.items() if pid in live and live[pid].start_ticks == start
        ]
        if not left:
            return
        if time.monotonic() >= deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Children:
    """Every child of the run, stopped in reverse start order by ``stop_all``."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        child = Child(name, argv, log_path, env=env, cwd=cwd)
        self._children.append(child)
        return child

    def stop(self, child: Child) -> None:
        if child in self._children:
            self._children.remove(child)
        child.stop()

    def pgids(self) -> list[int]:
        """Process groups of the children alive now (each child leads its own group)."""
        return [child.proc.pid for child in self._children if child.alive]

    def stop_all(self) -> None:
        while self._children:
            child = self._children.pop()
            with contextlib.suppress(Exception):
                child.stop()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(
    url: str, *, timeout_s: float = 2.0, headers: Mapping[str, str] | None = None
) -> int | None:
    """The status of a GET to a loopback URL, or None when nothing answered."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"loopback only: {url}")
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def wait_http_ok(child: Child, url: str, *, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early if ``child`` exits."""
    deadline = time.monotonic() + timeout_s
    last: int | None = None
    while time.monotonic() < deadline:
        if not child.alive:
            raise ChildError(
                f"{child.name} exited with {child.proc.returncode} before "
                f"{url} answered; log tail:\n{child.log_tail()}"
            )
        last = http_status(url, timeout_s=1.0)
        if last == 200:
            return
        time.sleep(0.1)
    raise ChildError(
        f"{child.name}: {url} did not answer 200 within {timeout_s:.0f}s "
        f"(last status {last}); log tail:\n{child.log_tail()}"
    )


def start_redis(children: Children, workdir: Path, *, timeout_s: float = 15.0) -> str:
    """A throw-away redis-server on a unix socket in ``workdir``; returns its URL."""
    sock_path = workdir / "redis.sock"
    argv = [
        "redis-server",
        "--port",
        "0",
        "--unixsocket",
        str(sock_path),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        *server_config.command_line(),  # the production memory settings (deploy/redis.conf)
    ]
    child = children.start("redis-server", argv, workdir / "redis.log")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive:
            raise ChildError(f"redis-server exited: {child.log_tail()}")
        if sock_path.exists() and _redis_ping(sock_path):
            return f"unix://{sock_path}"
        time.sleep(0.05)
    raise ChildError(f"redis-server not ready within {timeout_s:.0f}s: {child.log_tail()}")


def _redis_ping(sock_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(sock_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def tool_version(argv: Sequence[str], *, timeout_s: float = 10.0) -> str:
    """First line of a tool's version output, or a note that it is missing."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc.__class__.__name__})"
    text = (done.stdout or done.stderr).decode(errors="replace").strip()
    return text.splitlines()[0] if text else "unknown"


class _Proc(NamedTuple):
    ppid: int
    cpu_ticks: int
    start_ticks: int


def _processes() -> dict[int, _Proc]:
    """Every live process: parent, user+system CPU ticks, start time (from /proc/PID/stat)."""
    found: dict[int, _Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After "pid (comm) ": field 3 (state) is fields[0]; ppid 4, utime 14, stime 15,
        # starttime 22.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 19:
            cpu = int(fields[11]) + int(fields[12])
            found[int(entry.name)] = _Proc(int(fields[1]), cpu, int(fields[19]))
    return found


def _tree(roots: Sequence[int], procs: dict[int, _Proc]) -> dict[int, _Proc]:
    """``roots`` and all their live descendants (workers may leave the root's group)."""
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    tree: dict[int, _Proc] = {}
    todo = [pid for pid in roots if pid in procs]
    while todo:  # bounded: every live pid is visited at most once
        pid = todo.pop()
        if pid in tree:
            continue
        tree[pid] = procs[pid]
        todo.extend(children.get(pid, []))
    return tree


def descendants(pid: int) -> dict[int, int]:
    """Live descendants of ``pid`` (not ``pid`` itself) → their start times."""
    tree = _tree([pid], _processes())
    return {p: proc.start_ticks for p, proc in tree.items() if p != pid}


def tree_cpu_s(roots: Sequence[int]) -> float:
    """User+system CPU seconds of ``roots`` and all their live descendants."""
    tree = _tree(roots, _processes())
    return sum(proc.cpu_ticks for proc in tree.values()) / os.sysconf("SC_CLK_TCK")


def system_busy_s() -> float:
    """CPU seconds spent in user, nice and system mode by the whole machine (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system = (int(v) for v in fields[1:4])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and of its reaped children (wrk, pyload)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class CpuWatch:
    """CPU used, since creation, by processes that are not part of the benchmark."""

    def __init__(self, ours: Sequence[int]) -> None:
        self._ours = list(ours)
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        return system_busy_s(), tree_cpu_s(self._ours), own_cpu_s()

    def foreign_s(self) -> float:
        busy, groups, own = (b - a for a, b in zip(self._start, self._sample(), strict=True))
        return max(0.0, busy - groups - own)


def stored_bytes(url: str) -> tuple[int, int]:
    """``used_memory_dataset`` (``INFO memory``) and the number of stored sessions.

    On a cluster: the sum over the primaries, and the index from the node that holds it.
    """
    dataset, sessions = 0, 0
    for node_url in node_urls(url):
        client = redis.Redis.from_url(node_url, socket_timeout=10)
        try:
            dataset += int(client.info("memory")["used_memory_dataset"])
            with contextlib.suppress(redis.ResponseError):  # MOVED: another node holds it
                sessions += int(client.zcard(keys.SESSIONS_BY_CREATION))
        finally:
            client.close()
    return dataset, sessions


def redis_calls(url: str) -> dict[str, int]:
    """Calls per command so far (``INFO commandstats``, summed over a cluster's nodes)."""
    calls: dict[str, int] = {}
    for node_url in node_urls(url):
        client = redis.Redis.from_url(node_url, socket_timeout=10)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        for name, value in stats.items():
            if isinstance(value, dict):
                command = name.removeprefix("cmdstat_")
                calls[command] = calls.get(command, 0) + int(value["calls"])
    return calls


#: Primaries of the benchmark's loopback cluster (no replicas: the rows measure routing).
CLUSTER_PRIMARIES = 3
_SLOTS = 16384
_BUS_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_cluster(children: Children, workdir: Path, *, timeout_s: float = 30.0) -> str:
    """Three redis-server primaries on loopback TCP in one cluster; a ``redis+cluster://`` URL.

    The same binary and memory settings as :func:`start_redis`, so a cluster row and its
    single-node row differ only by the cluster (and TCP instead of a unix socket).
    """
    ports: list[int] = []
    while len(ports) < CLUSTER_PRIMARIES:  # each node also listens on port + 10000 (its bus)
        port = free_port()
        if port + _BUS_OFFSET < 65536 and port not in ports and _free(port + _BUS_OFFSET):
            ports.append(port)
    for port in ports:
        directory = workdir / f"cluster-{port}"
        directory.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--save", "", "--appendonly", "no", "--dir", str(directory)),
            *("--daemonize", "no", "--loglevel", "warning"),
            *server_config.command_line(),
        ]
        children.start(f"cluster-{port}", argv, directory / "redis.log")
    nodes = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) for port in ports]
    try:
        deadline = time.monotonic() + timeout_s
        _until(deadline, "the cluster nodes answer", lambda: all(_pings(n) for n in nodes))
        share = _SLOTS // CLUSTER_PRIMARIES
        for index, node in enumerate(nodes):
            last = _SLOTS - 1 if index == CLUSTER_PRIMARIES - 1 else (index + 1) * share - 1
            node.cluster("ADDSLOTSRANGE", index * share, last)
        for node in nodes[1:]:
            node.cluster("MEET", "127.0.0.1", ports[0])
        _until(
            deadline,
            "every node serves the whole slot map",
            lambda: all(
                n.cluster("info")["cluster_state"] == "ok"
                and len(n.cluster("slots")) == CLUSTER_PRIMARIES
                for n in nodes
            ),
        )
    finally:
        for node in nodes:
            node.close()
    return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)


def _pings(node: redis.Redis) -> bool:
    try:
        return bool(node.ping())
    except redis.RedisError:
        return False


def _until(deadline: float, what: str, ready: Callable[[], bool]) -> None:
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise ChildError(f"not ready in time: {what}")


def node_urls(url: str) -> list[str]:
    """Every server behind ``url``: one for a single node, each seed of a cluster URL."""
    scheme, _, rest = url.partition("://")
    if not scheme.endswith("+cluster"):
        return [url]
    plain = scheme.removesuffix("+cluster")
    return [f"{plain}://{seed}" for seed in rest.split("/")[0].split(",")]
