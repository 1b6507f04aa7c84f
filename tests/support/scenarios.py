"""Every test scenario of the suite with its file and kind, as the markdown table of
tests/README.md, read from the sources (no test module is imported or run).

    python -m tests.support.scenarios            # the working tree
    python -m tests.support.scenarios --rev REV  # the suite at a commit (git show)

A scenario is one test function (a parametrized one counts once). Its kind follows the rules of
the conftest files: the markers of its module (`pytestmark`) and of the function; everything in
tests/deploy is `static` unless marked `integration`; anything without `integration`,
`static` or `docker` is `unit`.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT

MARKERS = ("integration", "faults", "slow", "docker", "static", "property")
KIND_ORDER = ("unit", "static", "integration", "faults", "slow", "docker", "property")


@dataclass(frozen=True)
class Scenario:
    file: str
    name: str
    kinds: tuple[str, ...]
    parametrized: bool


def _marks(nodes: Iterable[ast.expr]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        text = ast.unparse(node)
        found |= {m for m in MARKERS if f"mark.{m}" in text}
    return found


def _module_marks(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            found |= _marks([node.value])
    return found


def _kinds(path: str, marks: set[str]) -> tuple[str, ...]:
    kinds = set(marks)
    if path.startswith("tests/deploy/") and "integration" not in kinds:
        kinds.add("static")
    if not kinds & {"integration", "static", "docker"}:
        kinds.add("unit")
    return tuple(k for k in KIND_ORDER if k in kinds)


def scenarios_of(path: str, source: str) -> Iterator[Scenario]:
    tree = ast.parse(source)
    module = _module_marks(tree)

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[Scenario]:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                yield Scenario(
                    file=path,
                    name=prefix + node.name,
                    kinds=_kinds(path, module | _marks(node.decorator_list)),
                    parametrized=any("parametrize" in ast.unparse(d) for d in node.decorator_list),
                )
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                yield from walk(node.body, f"{prefix}{node.name}::")

    yield from walk(tree.body, "")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout


def collect(rev: str | None = None) -> list[Scenario]:
    """The scenarios of the working tree, or of the suite at commit `rev`."""
    if rev is None:
        files = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "tests").rglob("*.py"))
    else:
        files = sorted(_git("ls-tree", "-r", "--name-only", rev, "tests").split())
    found: list[Scenario] = []
    for path in files:
        if not Path(path).name.startswith("test_") or not path.endswith(".py"):
            continue
        source = (
            (REPO_ROOT / path).read_text(encoding="utf-8")
            if rev is None
            else _git("show", f"{rev}:{path}")
        )
        found.extend(scenarios_of(path, source))
    return found


def markdown(scenarios: list[Scenario]) -> str:
    counts = Counter(k for s in scenarios for k in s.kinds)
    lines = [
        f"{len(scenarios)} scenarios: "
        + ", ".join(f"{counts[k]} {k}" for k in KIND_ORDER if counts[k]),
        "",
        "| file | scenario | kind |",
        "|---|---|---|",
    ]
    for s in scenarios:
        mark = " (parametrized)" if s.parametrized else ""
        lines.append(
            f"| `{s.file.removeprefix('tests/')}` | `{s.name}`{mark} | {', '.join(s.kinds)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rev", help="a commit: the suite as it was there")
    args = parser.parse_args(argv)
    print(markdown(collect(args.rev)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
