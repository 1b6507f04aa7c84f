"""CPU, RSS and PSS of a consumer worker's processes, sampled while a benchmark runs, and the
verdicts on them.

A worker is a process tree: the supervisor (`python -m consumer run`) starts the KCL
MultiLangDaemon (Java), which starts one shard processor (`python -m consumer process`) per
lease. The sampler walks that tree from the supervisor's pid on every round, so processors
that start (or restart) during the run are found too.

RSS counts every shared page in full in every process that maps it; PSS divides shared pages
among the processes sharing them, so the processors' PSS figures add up to what they really
cost the machine. Both are reported; the goal is stated on RSS (issue 3).

A figure the sampler could not measure is a failure of the benchmark, never a pass: a goal
judged on an empty list of samples says nothing (an earlier version judged the memory goal met
on "0 MB" from a sampler that had never run).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import psutil

SUPERVISOR = "supervisor"
KCL = "kcl"
PROCESSOR = "processor"
ROLES = (SUPERVISOR, KCL, PROCESSOR)

DAEMON_MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
MB = float(2**20)
# The memory goal per shard processor (issue 3), judged by every benchmark that runs a worker.
PROCESSOR_RSS_GOAL_MB = 350.0


def role_of(cmdline: Sequence[str], pid: int, root_pid: int) -> str | None:
    """Which part of the worker a process is, from its command line; None for others (a
    shell the daemon may put in between, a helper the JVM starts)."""
    if pid == root_pid:
        return SUPERVISOR
    if DAEMON_MAIN_CLASS in cmdline:
        return KCL
    # `python -m consumer process` (PROCESSOR_COMMAND), whatever the interpreter's path.
    for i in range(len(cmdline) - 2):
        if tuple(cmdline[i : i + 3]) == ("-m", "consumer", "process"):
            return PROCESSOR
    return None


def cpu_percent(previous: tuple[float, float] | None, now: tuple[float, float]) -> float | None:
    """CPU % of one process between two readings of (wall seconds, CPU seconds); None for
    the first reading of a process, which has nothing to be compared with."""
    if previous is None:
        return None
    wall = now[0] - previous[0]
    if wall <= 0:
        return None
    return max(0.0, 100.0 * (now[1] - previous[1]) / wall)


@dataclass(frozen=True)
class Reading:
    """One process in one sampling round."""

    role: str
    pid: int
    rss_mb: float
    pss_mb: float | None  # None: the kernel's smaps could not be read
    cpu_pct: float | None  # None: first reading of this pid


@dataclass(frozen=True)
class RoleFigures:
    """What the samples say about one role (supervisor, kcl or processor)."""

    role: str
    rounds: int  # sampling rounds that read at least one process of the role
    processes: int  # distinct pids seen
    rss_max_each_mb: float | None
    pss_max_each_mb: float | None
    cpu_mean_pct: float | None  # the role's processes together, mean over rounds


def summarize(rounds: Iterable[Sequence[Reading]]) -> dict[str, RoleFigures]:
    """Per role: maxima of RSS and PSS over every process and round, and the mean over rounds
    of the role's summed CPU. A figure with no reading behind it is None, never 0."""
    per_role: dict[str, list[Sequence[Reading]]] = {role: [] for role in ROLES}
    for readings in rounds:
        for role in ROLES:
            mine = [r for r in readings if r.role == role]
            if mine:
                per_role[role].append(mine)
    out: dict[str, RoleFigures] = {}
    for role, role_rounds in per_role.items():
        flat = [r for readings in role_rounds for r in readings]
        pss = [r.pss_mb for r in flat if r.pss_mb is not None]
        # A round counts for CPU only when every process in it has a figure: a processor seen
        # for the first time would otherwise lower the sum by its missing share.
        cpu_rounds = [
            sum(r.cpu_pct for r in readings if r.cpu_pct is not None)
            for readings in role_rounds
            if all(r.cpu_pct is not None for r in readings)
        ]
        out[role] = RoleFigures(
            role=role,
            rounds=len(role_rounds),
            processes=len({r.pid for r in flat}),
            rss_max_each_mb=max((r.rss_mb for r in flat), default=None),
            pss_max_each_mb=max(pss, default=None),
            cpu_mean_pct=statistics.fmean(cpu_rounds) if cpu_rounds else None,
        )
    return out


class Status(Enum):
    MET = "MET"
    MISSED = "MISSED"
    MEASURED = "measured"  # a figure reported without a goal
    NO_SAMPLES = "NO SAMPLES"

    @property
    def passed(self) -> bool:
        return self in (Status.MET, Status.MEASURED)


@dataclass(frozen=True)
class Verdict:
    name: str
    value: float | None
    status: Status
    limit: float | None = None
    unit: str = ""
    why: str = ""

    def line(self) -> str:
        shown = "no samples" if self.value is None else f"{self.value:,.1f} {self.unit}".strip()
        goal = ""
        if self.limit is not None:
            goal = f" (goal <= {f'{self.limit:,.0f} {self.unit}'.strip()})"
        why = f": {self.why}" if self.why else ""
        return f"{self.name}: {shown}{goal} -> {self.status.value}{why}"


def at_most(name: str, value: float | None, limit: float, unit: str = "") -> Verdict:
    """A goal `value <= limit`; without a value the benchmark failed to measure, not met."""
    if value is None:
        return Verdict(name, None, Status.NO_SAMPLES, limit, unit, "nothing was measured")
    status = Status.MET if value <= limit else Status.MISSED
    return Verdict(name, value, status, limit, unit)


def measured(name: str, value: float | None, unit: str = "", why_missing: str = "") -> Verdict:
    """A figure reported without a goal: it still has to exist."""
    if value is None:
        return Verdict(name, None, Status.NO_SAMPLES, None, unit, why_missing or "no samples")
    return Verdict(name, value, Status.MEASURED, None, unit)


def usage_verdicts(
    figures: dict[str, RoleFigures], *, expected_processors: int, rss_goal_mb: float
) -> list[Verdict]:
    """The memory goal per shard processor, and every other usage figure the benchmark prints,
    each of which must rest on samples."""
    verdicts: list[Verdict] = []
    processors = figures[PROCESSOR]
    if processors.processes < expected_processors:
        verdicts.append(
            Verdict(
                "shard processors sampled",
                float(processors.processes),
                Status.NO_SAMPLES,
                why=f"expected {expected_processors} (one per shard); the figures below would "
                "describe only part of the worker",
            )
        )
    verdicts.append(
        at_most("RSS per shard processor (max)", processors.rss_max_each_mb, rss_goal_mb, "MB")
    )
    names = {SUPERVISOR: "supervisor", KCL: "KCL daemon", PROCESSOR: "shard processors"}
    for role in (PROCESSOR, KCL, SUPERVISOR):
        one = figures[role]
        missing = f"no {names[role]} process was sampled" if one.rounds == 0 else ""
        if role != PROCESSOR:
            verdicts.append(
                measured(f"{names[role]} RSS (max)", one.rss_max_each_mb, "MB", missing)
            )
        verdicts.append(
            measured(
                f"{names[role]} PSS (max{' per process' if role == PROCESSOR else ''})",
                one.pss_max_each_mb,
                "MB",
                missing or "the kernel's smaps_rollup could not be read",
            )
        )
        verdicts.append(
            measured(
                f"{names[role]} CPU (mean{', together' if role == PROCESSOR else ''})",
                one.cpu_mean_pct,
                "%",
                missing or "each process was read only once (the run was shorter than 2 rounds)",
            )
        )
    return verdicts


def failures(verdicts: Iterable[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if not v.status.passed]


def report(verdicts: Sequence[Verdict]) -> str:
    """The verdicts one per line, and a closing line that says whether the benchmark measured
    and met everything it claims."""
    lines = [f"  {v.line()}" for v in verdicts]
    unmeasured = [v for v in verdicts if v.status is Status.NO_SAMPLES]
    if unmeasured:
        lines.append(
            "  BENCHMARK FAILED: "
            + "; ".join(f"{v.name}: {v.why}" for v in unmeasured)
            + " (a figure without samples is a failure, never a pass)"
        )
    return "\n".join(lines)


@dataclass
class ProcessSampler:
    """Samples the process tree under `root_pid` every `interval` seconds in a thread."""

    root_pid: int
    interval: float = 1.0
    rounds: list[list[Reading]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    _last_cpu: dict[int, tuple[float, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ProcessSampler:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> ProcessSampler:
        self.sample()  # the first readings, so that CPU has a start point
        self._thread = threading.Thread(target=self._run, daemon=True, name="process-sampler")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def sample(self) -> list[Reading]:
        """One round over the tree; a process that ends meanwhile is simply not in it."""
        readings: list[Reading] = []
        try:
            root = psutil.Process(self.root_pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error as error:
            self.errors.append(f"pid {self.root_pid}: {error}")
            self.rounds.append(readings)
            return readings
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                reading = self._read(proc)
                if reading is not None:
                    readings.append(reading)
        self.rounds.append(readings)
        return readings

    def _read(self, proc: psutil.Process) -> Reading | None:
        try:
            role = role_of(proc.cmdline(), proc.pid, self.root_pid)
        except psutil.AccessDenied as error:
            self.errors.append(f"pid {proc.pid}: {error}")
            return None
        if role is None:
            return None
        with proc.oneshot():
            times = proc.cpu_times()
            now = (self.clock(), times.user + times.system)
            rss = proc.memory_info().rss / MB
            pss: float | None = None
            try:
                # smaps_rollup under the hood: cheap even for the JVM's many mappings.
                pss = proc.memory_full_info().pss / MB
            except (psutil.AccessDenied, AttributeError) as error:
                self.errors.append(f"pid {proc.pid} PSS: {error}")
        cpu = cpu_percent(self._last_cpu.get(proc.pid), now)
        self._last_cpu[proc.pid] = now
        return Reading(role, proc.pid, rss, pss, cpu)

    def summary(self) -> dict[str, RoleFigures]:
        return summarize(self.rounds)
