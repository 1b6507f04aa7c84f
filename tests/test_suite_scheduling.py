"""The suite's xdist scheduler: modules in the collection's order (longest first), at most
`lanes` service-heavy modules in play, light modules to the other workers meanwhile."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.support.scheduling import HeavyLanesScheduling


def heavy_tests(count: int) -> list[str]:
    """One-test modules that start services, longest first (as the suite orders them)."""
    return [f"tests/integration/test_h{i}.py::test" for i in range(count)]


def light_tests(count: int) -> list[str]:
    """Modules of four unit tests each."""
    return [f"tests/consumer/test_l{i}.py::test_{j}" for i in range(count) for j in range(4)]


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


def start(
    lanes: int, heavy_modules: int = 5, light_modules: int = 4
) -> tuple[HeavyLanesScheduling, list[FakeNode]]:
    # What the scheduler reads of the configuration: four workers, and the order kept as
    # collected (--no-loadscope-reorder).
    config: Any = SimpleNamespace(
        getvalue=lambda name: ["4*popen"], option=SimpleNamespace(loadscopereorder=False)
    )
    scheduler = HeavyLanesScheduling(
        config, None, lanes=lanes, heavy=lambda m: m.startswith("tests/integration/")
    )
    nodes = [FakeNode(f"gw{i}") for i in range(4)]
    collection = heavy_tests(heavy_modules) + light_tests(light_modules)
    for node in nodes:
        scheduler.add_node(node)  # type: ignore[arg-type]
        scheduler.add_node_collection(node, collection)  # type: ignore[arg-type]
    scheduler.schedule()
    return scheduler, nodes


def modules_of(scheduler: HeavyLanesScheduling, node: FakeNode) -> list[str]:
    collection = scheduler.collection or []
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
    collection = scheduler.collection or []
    for index in [i for i in node.sent if collection[i].startswith(module + "::")]:
        scheduler.mark_test_complete(node, index)  # type: ignore[arg-type]
    return module


def test_three_lanes_start_the_three_longest_heavy_modules_and_a_light_one() -> None:
    scheduler, nodes = start(lanes=3)
    # The first module of each worker, then the one xdist hands it ahead (a worker runs the
    # last test it holds only once it holds another): light ones, so that the next heavy
    # modules stay in the queue for whichever worker is free first.
    assert [modules_of(scheduler, node) for node in nodes] == [
        ["tests/integration/test_h0.py", "tests/consumer/test_l1.py"],
        ["tests/integration/test_h1.py", "tests/consumer/test_l2.py"],
        ["tests/integration/test_h2.py", "tests/consumer/test_l3.py"],
        ["tests/consumer/test_l0.py"],  # three heavy modules run: the fourth worker is light
    ]


def test_the_heavy_modules_left_go_to_the_worker_free_first() -> None:
    scheduler, nodes = start(lanes=3)
    # The light worker works through its module while three heavy ones run; no light module is
    # left in the queue, so it takes the longest heavy one left rather than idle, and (xdist
    # keeps a worker two tests ahead, and each of these modules is one test) the shortest one
    # behind it.
    assert finish_running_module(scheduler, nodes[3]) == "tests/consumer/test_l0.py"
    assert modules_of(scheduler, nodes[3])[1:] == [
        "tests/integration/test_h3.py",
        "tests/integration/test_h4.py",
    ]
    assert not scheduler.workqueue
    # The heavy workers go on with the light module each was handed ahead, and then stop.
    assert finish_running_module(scheduler, nodes[0]) == "tests/integration/test_h0.py"
    assert finish_running_module(scheduler, nodes[0]) == "tests/consumer/test_l1.py"
    assert modules_of(scheduler, nodes[0]) == [
        "tests/integration/test_h0.py",
        "tests/consumer/test_l1.py",
    ]


def test_behind_a_heavy_module_with_no_light_one_left_comes_the_shortest_heavy_one() -> None:
    scheduler, nodes = start(lanes=3, heavy_modules=7, light_modules=1)
    # The light worker holds the only light module; the three heavy workers are handed the
    # shortest heavy modules ahead (the queue is longest first), the long ones stay queued.
    assert [modules_of(scheduler, node)[1:] for node in nodes[:3]] == [
        ["tests/integration/test_h6.py"],
        ["tests/integration/test_h5.py"],
        ["tests/integration/test_h4.py"],
    ]
    assert list(scheduler.workqueue) == ["tests/integration/test_h3.py"]


def test_one_lane_runs_heavy_modules_one_at_a_time_while_light_ones_are_left() -> None:
    scheduler, nodes = start(lanes=1)
    assert [modules_of(scheduler, node)[0] for node in nodes] == [
        "tests/integration/test_h0.py",
        "tests/consumer/test_l0.py",
        "tests/consumer/test_l1.py",
        "tests/consumer/test_l2.py",
    ]
    assert modules_of(scheduler, nodes[0])[1] == "tests/consumer/test_l3.py"
