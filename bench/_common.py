"""Helpers shared by the benchmarks: start the daemon pinned to a core, sample its CPU/RSS,
read its stdout lines with arrival times, and summarise latencies."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# Files a run made are not deleted before the last figure of the outermost benchmark is
# measured (run_all.py's children, ab_pipeline.py's alternating runs): ``discard`` moves
# them into one trash directory (a rename, nothing freed), and the process that made the
# trash empties it at its exit. Why: this machine's root file system is ext4 without a
# journal, where creating a file scans past every inode freed in the last one to six
# minutes (``recently_deleted`` in ext4's inode allocator; perf showed it as 25% of the
# CPU of the HTTP pipeline run right after the previous run's pictures were deleted). A
# daemon keeping its pictures does not pay that; a benchmark deleting 10,000 pictures
# between two runs made the second pay it, and the figure was the benchmark's own.
TRASH_ENV = "LPRMETA_BENCH_TRASH"


# ext4 counts an inode deleted this long ago (its table block written out) as not recent.
RECENT_DELETION_S = 61
_DELETED_AT = Path(tempfile.gettempdir()) / "lprmeta-bench-deleted-at"


def forget_deletions() -> bool:
    """Files deleted before now cost the next files nothing more. Why: ext4 without a
    journal skips, for every file it creates, each free inode whose inode table block is
    in memory with a deletion time under a minute old (five while the block is dirty):
    ``recently_deleted()``, a look-up per free inode, from the group's first, every time.
    After 60,000 files were deleted, the bare hashing and writing of TCP pictures
    (``pipeline_bench.floor``) fell from 2,998 to 549 inputs/s (2026-12-07), and ``perf``
    showed the scan as 16-24% of the HTTP daemon's and pipeline's CPU.

    So: ``sync`` (the blocks clean: one minute, not five), the kernel's clean caches
    dropped (``/proc/sys/vm/drop_caches``, as root: a block not in memory is not looked
    at until a new inode's allocation reads it back), and, when a benchmark of this
    directory deleted files less than a minute ago (its trash, at its exit: the time is
    kept in a file), a wait for the rest of that minute. Done when the outermost
    benchmark starts; ``False`` when the caches could not be dropped (not root): the
    figures then may carry deletions made by others (tests) in the last minutes."""
    os.sync()
    try:
        deleted_at = float(_DELETED_AT.read_text())
    except (OSError, ValueError):
        deleted_at = 0.0
    wait = deleted_at + RECENT_DELETION_S - time.time()
    if 0 < wait <= RECENT_DELETION_S:
        print(
            f"waiting {wait:.0f} s: the last benchmark's deletions (bench/README.md)",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(wait)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def _empty_trash(trash: str) -> None:
    try:
        deleting = any(Path(trash).iterdir())
    except OSError:
        deleting = False
    shutil.rmtree(trash, ignore_errors=True)
    if not deleting:
        return
    os.sync()
    with contextlib.suppress(OSError):
        _DELETED_AT.write_text(f"{time.time():.3f}\n")


if not os.environ.get(TRASH_ENV):
    os.environ[TRASH_ENV] = tempfile.mkdtemp(prefix="lprmeta-bench-trash-")  # children too
    atexit.register(_empty_trash, os.environ[TRASH_ENV])
    if not forget_deletions():
        print(
            "note: could not drop the kernel's caches (not root?): files deleted in the "
            "last minutes may slow file creation (bench/README.md)",
            file=sys.stderr,
        )


# ext4's flag for "the top of a directory hierarchy" (chattr +T): a directory made in one
# gets its inodes from a group ext4 picks afresh (its Orlov allocator), not its parent's.
_TOPDIR_FL = 0x00020000
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602


def work_dir(prefix: str) -> Path:
    """A new directory for one run's files (the daemon's pictures, a store), made where
    ext4 gives it an inode group of its own: under ``$TMPDIR/lprmeta-bench-work``, which
    carries the ``+T`` flag. Why: the runs' files were otherwise made in the group of
    ``/tmp``, where every earlier benchmark and test deleted theirs, and on this machine's
    ext4 without a journal each new file there scanned past those (five minutes and more
    after the deletions: an inode table block that a new file dirties counts its deleted
    inodes as recent for five minutes). 2026-12-07, ``pipeline_bench``'s TCP feed in
    separate processes one after another, alternately in ``/tmp`` and in a ``+T``
    directory: 942-1,492 against 1,640-1,847 inputs/s, the kernel's share 46-63% against
    33-36%. (Inside one outermost benchmark, which deletes nothing until it exits, it made
    no difference.) Where the flag cannot be set (another file
    system, no privilege), a plain directory: nothing else changes."""
    base = Path(tempfile.gettempdir()) / "lprmeta-bench-work"
    base.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = bytearray(8)
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
            now = int.from_bytes(flags[:4], sys.byteorder)
            if not now & _TOPDIR_FL:  # the kernel reads an int; the ioctl's size says long
                fcntl.ioctl(
                    fd, _FS_IOC_SETFLAGS, (now | _TOPDIR_FL).to_bytes(4, sys.byteorder) + bytes(4)
                )
        finally:
            os.close(fd)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def discard(path: Path) -> None:
    """Remove ``path`` (a run's work directory) once every benchmark of this command has
    measured: moved into the trash now, deleted at the outermost benchmark's exit."""
    if not path.exists():
        return
    trash = Path(os.environ[TRASH_ENV])
    try:
        trash.mkdir(parents=True, exist_ok=True)
        path.rename(tempfile.mkdtemp(prefix=path.name + "-", dir=trash))
    except OSError:  # another file system: delete now
        shutil.rmtree(path, ignore_errors=True)


def settle_disk() -> None:
    """Before a measured run: the previous run's pictures written out (``sync``), so the
    kernel does not throttle this run's writes for the last one's dirty pages."""
    os.sync()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def family(pid: int) -> list[int]:
    """``pid`` and its child processes (``lprmeta run --workers``'s workers)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def family_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (a child that exited is not counted:
    benchmarks keep their workers for the whole run)."""
    total = 0.0
    for p in family(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            continue
    return total


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def pss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mib(pid)


def open_fds(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` (the main thread's id is ``pid``)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def threads(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/task").iterdir())


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cores: set[int]) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, cores)


def start_daemon(
    config: Path, cwd: Path, *, core: int | None = 0, workers: int = 0
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lprmeta", "run", "--config", str(config), "--log-format", "json"]
    if workers:
        cmd += ["--workers", str(workers)]
    if core is not None and (os.cpu_count() or 1) >= 2:
        cmd = ["taskset", "-c", str(core), *cmd]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_log(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 60) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("daemon exited: " + proc.stderr.read().decode()[-2000:])
        if needle in line:
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return
    raise TimeoutError(f"daemon did not log {needle!r}")


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


class SimProcess:
    """A simulator script (``bench/_*_sim.py``, the other end of ``_sim_link.py``) in its
    own process on core 1, and what it says: ``ready`` (its ports), status counts until
    ``go``, ``sent`` batches of ``[plate, time, ...]``, and ``done`` totals."""

    def __init__(self, script: str, args: list[str], *, start_timeout: float) -> None:
        cmd = [sys.executable, str(ROOT / "bench" / script), *args]
        if (os.cpu_count() or 1) >= 2:
            cmd = ["taskset", "-c", "1", *cmd]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.ready: Any = None
        self.status: dict[str, int] = {}
        self.sent: dict[str, tuple[Any, ...]] = {}  # plate -> (time, what else was sent)
        self.done: dict[str, int] = {}
        self._ready = threading.Event()
        self._done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(start_timeout):
            raise RuntimeError("simulator did not start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "ready" in msg:
                self.ready = msg["ready"]
                self._ready.set()
            elif "sent" in msg:
                self.sent.update((entry[0], tuple(entry[1:])) for entry in msg["sent"])
            elif "done" in msg:
                self.done = msg["done"]
                self._done.set()
            else:
                self.status.update(msg)

    def wait_status(self, key: str, n: int, timeout: float = 120) -> None:
        """Until the simulator reports ``key`` (e.g. streams playing) at ``n`` or more."""
        deadline = time.monotonic() + timeout
        while self.status.get(key, 0) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.status.get(key, 0)} of {n} {key}")
            time.sleep(0.2)

    def _say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def go(self) -> None:
        self._say("go")

    def wait_done(self, timeout: float) -> None:
        if not self._done.wait(timeout):
            raise TimeoutError("simulator did not finish")

    def stop(self, timeout: float = 60) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._say("stop")
        self.proc.wait(timeout)


class LineReader(threading.Thread):
    """Reads the daemon's stdout; calls ``on_line(parsed, arrival_monotonic)`` per line."""

    def __init__(self, stream: Any, on_line: Callable[[dict[str, Any], float], None]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.on_line = on_line
        self.count = 0

    def run(self) -> None:
        for raw in self.stream:
            now = time.monotonic()
            self.count += 1
            self.on_line(json.loads(raw), now)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {"p50": ordered[0], "p99": ordered[0], "max": ordered[0]}
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p99": q[98], "max": ordered[-1]}


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}"


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("figure", "value", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))  # noqa: E731
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *map(line, rows)])
