"""Scoring throughput, stream latency and hot reload of two commits, measured in one run on the
same machine, side by side ("no worse than before", issue 10).

    python -m benchmarks.compare --before 183baf9 [--after HEAD] [--only scoring latency reload]

Each commit is checked out into a temporary `git worktree` (removed at the end) and runs its
own benchmark scripts with this interpreter, the same arguments and the same UCI file: the code
under test, the test model it builds and the champion it trains are each commit's own. Layouts
differ between commits (at 183baf9 the benchmarks were scripts, `python benchmarks/x.py`, and
the embedded stack lived in scripts/stack; since then they are modules of the `benchmarks`
package, `python -m benchmarks.x`, and the stack is `devstack/`): the invocation follows the
layout found in each checkout, and each figure is read from what that commit's script printed
(its --json file where it has one, else its table, whose format both share). The stack's Node
tools (kinesis-local) come from this checkout's `devstack/node_modules`, linked into each tree.

Figures compared: scoring records/s of the test model at batches of 500 and 1,000, the fastest
of three runs per commit (the commits alternate, before-after-after-before-..., so that neither
gets all the quiet moments; the median is shown beside it);
put->prediction p50/p99 at 200 records/s of the tuned consumer and the RSS of a shard
processor; the hot reload's worst and median of three alias moves. A difference within the
stated noise band of a figure counts as "same"; beyond it in the bad direction as "WORSE"
(exit 1). The shared machine's other load moves these figures, which is why both sides are
measured in the same run rather than compared with an old note.

Like for like: the later consumer also captures every batch (issue 11, on by default), which
183baf9 did not do. Its tuned run with capture off is judged against the old tuned run; the
runs with capture on (tuned, and the KCL's default polling) are shown beside the old figures,
not judged here: stream_latency judges them against the latency goals and capture's budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("scoring", "latency", "reload")


@dataclass(frozen=True)
class Tree:
    label: str  # "before" or "after"
    rev: str
    commit: str
    path: Path

    @property
    def modules(self) -> bool:
        """Benchmarks as a package (python -m benchmarks.x), or scripts (python benchmarks/x.py)."""
        return (self.path / "benchmarks" / "__init__.py").is_file()

    def command(self, name: str, *args: str) -> list[str]:
        if self.modules:
            return [sys.executable, "-m", f"benchmarks.{name}", *args]
        return [sys.executable, str(self.path / "benchmarks" / f"{name}.py"), *args]


def git(*args: str, cwd: Path = REPO_ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextlib.contextmanager
def checked_out(label: str, rev: str, parent: Path) -> Iterator[Tree]:
    """`rev` in a temporary worktree with the Node tools linked in; removed afterwards."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = parent / label
    git("worktree", "add", "--detach", str(path), commit)
    try:
        node_modules = (REPO_ROOT / "devstack" / "node_modules").resolve()
        # Wherever the tree keeps its package.json for kinesis-local (scripts/stack at first,
        # devstack/ later), the same installed packages: the lock files are identical.
        for package in ("devstack", "scripts/stack"):
            folder = path / package
            if (folder / "package.json").is_file() and not (folder / "node_modules").exists():
                (folder / "node_modules").symlink_to(node_modules, target_is_directory=True)
        yield Tree(label, rev, commit, path)
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )
        subprocess.run(["git", "worktree", "prune"], cwd=REPO_ROOT, check=False)


def child_env(tree: Tree, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        {
            "PYTHONPATH": str(tree.path),
            # Both the old and the new locators honour these: one file for both commits.
            "DATA_PATH": str(data),
            "TEST_DATA_PATH": str(data),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run(tree: Tree, data: Path, logs: Path, name: str, *args: str) -> str:
    """Runs one benchmark of one tree; its output goes to a log file and is returned."""
    log = logs / f"{tree.label}-{name}-{int(time.time())}.log"
    command = tree.command(name, *args)
    print(f"  {tree.label} ({tree.commit[:7]}): {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.run(
            command,
            cwd=tree.path,
            env=child_env(tree, data),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    text = log.read_text(encoding="utf-8", errors="replace")
    print(f"    exit {code} after {time.monotonic() - started:.0f} s; log {log}", flush=True)
    return text


# --- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    higher_is_better: bool
    noise_pct: float  # a change within this band counts as the same
    # A figure whose after side does work the before side did not (capture, issue 11) is shown
    # beside the old one but not judged here: stream_latency judges it against its own goals.
    judged: bool = True


@dataclass
class Row:
    figure: Figure
    before: float | None
    after: float | None

    @property
    def change_pct(self) -> float | None:
        if self.before is None or self.after is None or self.before == 0:
            return None
        return 100.0 * (self.after - self.before) / self.before

    @property
    def verdict(self) -> str:
        change = self.change_pct
        if not self.figure.judged:
            return "shown" if self.after is not None else "NOT MEASURED"
        if change is None:
            return "NOT MEASURED"
        worse = -change if self.figure.higher_is_better else change
        if worse > self.figure.noise_pct:
            return "WORSE"
        if worse < -self.figure.noise_pct:
            return "better"
        return "same"


def scoring_figures(json_texts: list[str]) -> dict[str, float]:
    """The test model's records/s per batch size over a commit's runs: the fastest run's
    (judged: another user's load on the shared machine only ever slows a run down, so the
    fastest is the least disturbed) and the median of the runs' medians (shown)."""
    best: dict[int, list[float]] = {}
    median: dict[int, list[float]] = {}
    for text in json_texts:
        for m in json.loads(text):
            if m["model"] == "test model":
                best.setdefault(m["batch_size"], []).append(float(m["best_records_per_second"]))
                median.setdefault(m["batch_size"], []).append(float(m["records_per_second"]))
    figures = {f"scoring best records/s, batch {size}": max(v) for size, v in best.items()}
    figures |= {
        f"scoring median records/s, batch {size}": statistics.median(v)
        for size, v in median.items()
    }
    return figures


# The tables of benchmarks/stream_latency.py at 183baf9: one row per run.
_OLD_LATENCY_ROW = re.compile(
    r"^(?P<run>baseline \(KCL default polling\)|tuned) \d+ ms\s+(?P<records>\d+)\s+(?P<p50>\d+)"
    r"\s+(?P<p90>\d+)\s+(?P<p99>\d+)\s+(?P<max>\d+)\s+(?P<rss>\d+)\s+(?P<cpu>[\d.]+)\s*$",
    re.MULTILINE,
)


# Runs of the later stream_latency (--json) by what they compare with: at 183baf9 there was no
# capture, so its "tuned" run compares with the later run that has capture off; the runs with
# capture on (the later default) are shown beside it.
_NEW_RUNS = {
    "tuned-no-capture": "tuned",
    "tuned": "tuned + capture",
    "baseline": "KCL default + capture",
}


def latency_figures(stdout: str, json_text: str | None) -> dict[str, float]:
    figures: dict[str, float] = {}
    if json_text is not None:  # the modules' --json
        for r in json.loads(json_text)["runs"]:
            key = _NEW_RUNS.get(r["name"], r["name"])
            for q in ("p50", "p99"):
                if r[f"{q}_ms"] is not None:
                    figures[f"{key}: {q} ms"] = float(r[f"{q}_ms"])
            rss = r["usage"]["processor"]["rss_max_each_mb"]
            if r["name"] != "baseline" and rss is not None:
                figures[f"{key}: RSS per shard processor MB"] = float(rss)
        return figures
    for match in _OLD_LATENCY_ROW.finditer(stdout):
        # The old run is the before side of both later runs it can be set beside.
        tuned = match["run"] == "tuned"
        for key in ["tuned", "tuned + capture"] if tuned else ["KCL default + capture"]:
            figures[f"{key}: p50 ms"] = float(match["p50"])
            figures[f"{key}: p99 ms"] = float(match["p99"])
            if tuned:
                figures[f"{key}: RSS per shard processor MB"] = float(match["rss"])
    return figures


_RELOAD_MOVE = re.compile(r"^move \d+: alias set -> first new-version output\s+([\d.]+)\s*$", re.M)
_RELOAD_FLOOR = re.compile(r"^baseline: poll interval \+ cold offline load\s+([\d.]+)\s*$", re.M)


def reload_figures(stdout: str) -> dict[str, float]:
    """Both commits print the same hot-reload table."""
    moves = [float(m) for m in _RELOAD_MOVE.findall(stdout)]
    figures: dict[str, float] = {}
    if moves:
        figures["reload: worst s"] = max(moves)
        figures["reload: median s"] = statistics.median(moves)
    floor = _RELOAD_FLOOR.search(stdout)
    if floor:
        figures["reload: poll + cold load s"] = float(floor.group(1))
    return figures


FIGURES = [
    Figure("scoring best records/s, batch 500", "rec/s", True, 10.0),
    Figure("scoring best records/s, batch 1000", "rec/s", True, 10.0),
    Figure("scoring median records/s, batch 500", "rec/s", True, 10.0, judged=False),
    Figure("scoring median records/s, batch 1000", "rec/s", True, 10.0, judged=False),
    Figure("tuned: p50 ms", "ms", False, 25.0),
    Figure("tuned: p99 ms", "ms", False, 40.0),
    Figure("tuned: RSS per shard processor MB", "MB", False, 10.0),
    Figure("tuned + capture: p50 ms", "ms", False, 25.0, judged=False),
    Figure("tuned + capture: p99 ms", "ms", False, 40.0, judged=False),
    Figure("tuned + capture: RSS per shard processor MB", "MB", False, 10.0, judged=False),
    Figure("KCL default + capture: p50 ms", "ms", False, 25.0, judged=False),
    Figure("KCL default + capture: p99 ms", "ms", False, 40.0, judged=False),
    Figure("reload: worst s", "s", False, 30.0),
    Figure("reload: median s", "s", False, 30.0),
    Figure("reload: poll + cold load s", "s", False, 30.0),
]


# --- the run ---------------------------------------------------------------------------------


def measure_scoring(
    trees: tuple[Tree, Tree], data: Path, logs: Path, repeats: int
) -> dict[str, dict[str, float]]:
    before, after = trees
    texts: dict[str, list[str]] = {before.label: [], after.label: []}
    # before, after, after, before, ...: the order evens out a drifting machine.
    pairs = [(before, after) if i % 2 == 0 else (after, before) for i in range(repeats)]
    for i, tree in enumerate(t for pair in pairs for t in pair):
        out = logs / f"{tree.label}-scoring-{i}.json"
        run(tree, data, logs, "scoring_throughput", "--json", str(out))
        if out.is_file():
            texts[tree.label].append(out.read_text(encoding="utf-8"))
    return {label: scoring_figures(found) for label, found in texts.items()}


def measure_latency(
    trees: tuple[Tree, Tree], data: Path, logs: Path, seconds: float
) -> dict[str, dict[str, float]]:
    results = {}
    for tree in trees:
        args = ["--rate", "200", "--seconds", str(seconds)]
        out = logs / f"{tree.label}-latency.json"
        if tree.modules and "--runs" in run_help(tree, "stream_latency"):
            # The same two consumer runs as the old script, plus capture off: in the later
            # code capture is on by default, and did not exist before.
            args += ["--runs", "baseline", "tuned", "tuned-no-capture", "--no-capture-path"]
            args += ["--json", str(out)]
        stdout = run(tree, data, logs, "stream_latency", *args)
        results[tree.label] = latency_figures(
            stdout, out.read_text(encoding="utf-8") if out.is_file() else None
        )
    return results


def measure_reload(trees: tuple[Tree, Tree], data: Path, logs: Path) -> dict[str, dict[str, float]]:
    return {
        tree.label: reload_figures(
            run(tree, data, logs, "hot_reload", "--poll-seconds", "2", "--moves", "3")
        )
        for tree in trees
    }


def run_help(tree: Tree, name: str) -> str:
    result = subprocess.run(
        [*tree.command(name, "--help")],
        cwd=tree.path,
        env={**os.environ, "PYTHONPATH": str(tree.path)},
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout


def print_table(trees: tuple[Tree, Tree], rows: list[Row]) -> None:
    before, after = trees
    print()
    print(
        f"before: {before.rev} ({before.commit[:10]}), after: {after.rev} ({after.commit[:10]}); "
        f"one run, this machine ({os.cpu_count()} cores)"
    )
    header = f"{'figure':<40}{'before':>12}{'after':>12}{'change':>9}{'noise':>8}  verdict"
    print(header)
    print("-" * len(header))

    def num(value: float | None) -> str:
        return f"{'n/a':>12}" if value is None else f"{value:>12,.2f}"

    for row in rows:
        change = row.change_pct
        shown = f"{change:+.1f}%" if change is not None else "n/a"
        print(
            f"{row.figure.name:<40}{num(row.before)}{num(row.after)}{shown:>9}"
            f"{f'±{row.figure.noise_pct:.0f}%':>8}  {row.verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", required=True, help="the commit to compare against")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("--scoring-repeats", type=int, default=3, help="runs per commit")
    parser.add_argument(
        "--logs",
        type=Path,
        default=REPO_ROOT / "reports" / "compare",
        help="each benchmark's output (default: reports/compare, never committed)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from common.data_files import UciDownload, find_data_file

    data = find_data_file(None, download=UciDownload(), offline_copies=True).path.resolve()
    with tempfile.TemporaryDirectory(prefix="dropout-compare-") as tmp:
        parent = Path(tmp)
        logs = args.logs
        logs.mkdir(parents=True, exist_ok=True)
        with (
            checked_out("before", args.before, parent) as before,
            checked_out("after", args.after, parent) as after,
        ):
            trees = (before, after)
            print(
                f"before {before.commit[:10]} ({'modules' if before.modules else 'scripts'}), "
                f"after {after.commit[:10]} ({'modules' if after.modules else 'scripts'}); "
                f"data {data.name}",
                flush=True,
            )
            plan: dict[str, Callable[[], dict[str, dict[str, float]]]] = {
                "scoring": lambda: measure_scoring(trees, data, logs, args.scoring_repeats),
                "latency": lambda: measure_latency(trees, data, logs, args.latency_seconds),
                "reload": lambda: measure_reload(trees, data, logs),
            }
            measured: dict[str, dict[str, float]] = {"before": {}, "after": {}}
            for name in BENCHMARKS:
                if name in args.only:
                    print(f"{name} ...", flush=True)
                    for label, figures in plan[name]().items():
                        measured[label].update(figures)
            rows = [
                Row(f, measured["before"].get(f.name), measured["after"].get(f.name))
                for f in FIGURES
                if f.name in measured["before"] or f.name in measured["after"]
            ]
            print_table(trees, rows)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(
                    json.dumps(
                        {
                            "before": {"rev": before.rev, "commit": before.commit},
                            "after": {"rev": after.rev, "commit": after.commit},
                            "figures": measured,
                        },
                        indent=2,
                    )
                )
    # A figure one side could not produce is a failure to measure, not a pass.
    failed = [r for r in rows if r.verdict in ("WORSE", "NOT MEASURED")]
    for row in failed:
        print(f"{row.figure.name}: {row.verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
