"""SetFit's schedule is fitted to the time bound."""

from __future__ import annotations

from modhub.retrain.setfit import planned_steps


def test_all_planned_steps_when_they_fit() -> None:
    assert planned_steps(planned=100, done=3, step_seconds=0.5, remaining=300.0) == 100


def test_steps_cut_to_what_fits_in_the_time_left() -> None:
    # 3 done, 2 s each, 60 s left: 30 more.
    assert planned_steps(planned=1250, done=3, step_seconds=2.0, remaining=60.0) == 33


def test_at_least_one_more_step_and_never_more_than_planned() -> None:
    assert planned_steps(planned=1250, done=3, step_seconds=50.0, remaining=10.0) == 4
    assert planned_steps(planned=5, done=3, step_seconds=0.0, remaining=10.0) == 5
