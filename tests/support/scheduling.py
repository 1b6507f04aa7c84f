"""How xdist hands modules to workers: longest first, and, while unit and static modules are
left, no more service-heavy modules at once than the machine can run side by side.

Each module under tests/integration/ starts a KCL daemon (a JVM), shard processors, a producer
and often an MLflow server of its own next to the worker's emulators. Four of them at once on
2 cores make each several times slower (polls and lease renewals fall behind, so there is more
work, not only later work), so some workers are lanes for those and the others take the unit
and static modules meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController


class HeavyLanesScheduling(LoadFileScheduling):
    """`--dist loadfile` in the collection's order (longest first, tests/conftest.py), with at
    most `lanes` workers on heavy modules while light ones are left: a worker takes the next
    heavy module only while fewer than `lanes` others run one, and otherwise the next light
    module. xdist hands each worker its next module before the current one ends; ahead of a
    heavy module's end that is a light one, so the heavy modules go to whichever worker is free
    first. With no light module left, heavy ones go to any free worker, longest first (the
    shortest when handed out ahead of another heavy one)."""

    def __init__(
        self, config: pytest.Config, log: Any, *, lanes: int, heavy: Callable[[str], bool]
    ) -> None:
        super().__init__(config, log)
        self._lanes = lanes
        self._heavy = heavy

    def _running(self, node: WorkerController) -> str | None:
        """The module the worker runs now (or will run first): its first one not finished."""
        units = self.assigned_work.get(node, {})
        return next((module for module, tests in units.items() if not all(tests.values())), None)

    def _pick(self, node: WorkerController) -> str:
        heavy = [m for m in self.workqueue if self._heavy(m)]
        light = [m for m in self.workqueue if not self._heavy(m)]
        running = self._running(node)
        # Handed out ahead of a heavy module's end: a light one, so that the heavy ones stay in
        # the queue for whichever worker is free first; with none left, the shortest heavy one.
        if running is not None and self._heavy(running):
            return light[0] if light else heavy[-1]
        if not heavy or not light:
            return next(iter(self.workqueue))
        others = sum(
            1
            for other in self.nodes
            if other is not node and (m := self._running(other)) and self._heavy(m)
        )
        return heavy[0] if others < self._lanes else light[0]

    def _assign_work_unit(self, node: WorkerController) -> None:
        self.workqueue.move_to_end(self._pick(node), last=False)
        super()._assign_work_unit(node)
