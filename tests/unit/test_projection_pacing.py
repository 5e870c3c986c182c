"""How long the projection runner waits between batches while events keep coming."""

from __future__ import annotations

import pytest

from adapters.postgres import Database
from projections.runner import ProjectionRunner


def runner(**options: float) -> ProjectionRunner:
    return ProjectionRunner(None, Database("postgresql://unused", "pacing"), [], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("took", "interval"), [
    (0.0005, 0.010),  # a quick batch: the base interval, so a lone message is not held back
    (0.002, 0.010),
    (0.005, 0.015),   # a slow batch (a busy machine): three times as long, so the next gathers more
    (0.012, 0.036),
    (0.040, 0.050),   # never more than the ceiling
    (2.0, 0.050),
])
def test_a_slower_batch_is_followed_by_a_longer_wait_up_to_a_ceiling(took, interval):
    assert runner().interval_after(took) == pytest.approx(interval)


def test_the_base_interval_wins_over_a_lower_ceiling_and_with_pace_one_a_batch_may_follow_the_last_at_once():
    assert runner(batch_interval=0.02, max_batch_interval=0.01).interval_after(1.0) == pytest.approx(0.02)
    assert runner(pace=1.0).interval_after(0.03) == pytest.approx(0.03)
