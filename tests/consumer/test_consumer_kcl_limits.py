"""KCL lease limits in the rendered MultiLangDaemon properties."""

from __future__ import annotations

from consumer.config import ConsumerSettings
from consumer.service.kcl_properties import render_properties


def test_max_leases_for_worker_is_rendered_only_when_set() -> None:
    assert "maxLeasesForWorker" not in render_properties(ConsumerSettings())
    text = render_properties(ConsumerSettings(KCL_MAX_LEASES_FOR_WORKER=2))
    assert "maxLeasesForWorker = 2" in text.splitlines()
