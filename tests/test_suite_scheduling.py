"""The suite's xdist scheduler: modules in the collection's order (longest first), at most
`lanes` service-heavy modules in play, light modules to the other workers meanwhile."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.support.scheduling import HeavyLanesScheduling

HEAVY = [f"tests/integration/test_h{i}.py::test" for i in range(5)]
LIGHT = [f"tests/consumer/test_l{i}.py::test_{j}" for i in range(4) for j in range(4)]


class FakeNode:
    """What the scheduler sees of a worker: the tests sent to it (indexes into its collection)."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        pass


def start(lanes: int) -> tuple[HeavyLanesScheduling, list[FakeNode]]:
    # What the scheduler reads of the configuration: four workers, and the order kept as
    # collected (--no-loadscope-reorder).
    config: Any = SimpleNamespace(
        getvalue=lambda name: ["4*popen"], option=SimpleNamespace(loadscopereorder=False)
    )
    scheduler = HeavyLanesScheduling(
        config, None, lanes=lanes, heavy=lambda m: m.startswith("tests/integration/")
    )
    nodes = [FakeNode(f"gw{i}") for i in range(4)]
    collection = HEAVY + LIGHT  # the collection order: longest (heavy) first
    for node in nodes:
        scheduler.add_node(node)  # type: ignore[arg-type]
        scheduler.add_node_collection(node, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    return scheduler, nodes


def modules_of(node: FakeNode) -> list[str]:
    collection = HEAVY + LIGHT
    seen: list[str] = []
    for index in node.sent:
        module = collection[index].split("::")[0]
        if module not in seen:
            seen.append(module)
    return seen


def finish_running_module(scheduler: HeavyLanesScheduling, node: FakeNode) -> str:
    """Reports every test of the module the worker runs now as done; returns the module."""
    module = scheduler._running(node)  # type: ignore[arg-type]
    assert module is not None
    collection = HEAVY + LIGHT
    for index in [i for i in node.sent if collection[i].startswith(module + "::")]:
        scheduler.mark_test_complete(node, index)  # type: ignore[arg-type]
    return module


def test_three_lanes_start_the_three_longest_heavy_modules_and_a_light_one() -> None:
    _, nodes = start(lanes=3)
    # The first module of each worker, then the one xdist hands it ahead (a worker runs the
    # last test it holds only once it holds another).
    assert [modules_of(node) for node in nodes] == [
        ["tests/integration/test_h0.py", "tests/integration/test_h3.py"],  # a heavy lane
        ["tests/integration/test_h1.py", "tests/integration/test_h4.py"],  # a heavy lane
        ["tests/integration/test_h2.py", "tests/consumer/test_l1.py"],  # no heavy one left
        ["tests/consumer/test_l0.py"],  # the light lane: its module has tests to go
    ]


def test_the_light_lane_takes_light_modules_while_heavy_ones_run() -> None:
    scheduler, nodes = start(lanes=3)
    light_lane = nodes[3]
    finished = [finish_running_module(scheduler, light_lane) for _ in range(3)]
    assert finished == [
        "tests/consumer/test_l0.py",
        "tests/consumer/test_l2.py",
        "tests/consumer/test_l3.py",
    ]
    assert not scheduler.workqueue


def test_one_lane_runs_the_heavy_modules_one_after_another() -> None:
    _, nodes = start(lanes=1)
    assert [modules_of(node)[0] for node in nodes] == [
        "tests/integration/test_h0.py",
        "tests/consumer/test_l0.py",
        "tests/consumer/test_l1.py",
        "tests/consumer/test_l2.py",
    ]
    # The heavy lane goes on with the next heavy module, in the collection's order.
    assert modules_of(nodes[0])[1] == "tests/integration/test_h1.py"
