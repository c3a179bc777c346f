"""SetFit's schedule is fitted to the time bound, and fitted again as the steps' time changes."""

from __future__ import annotations

from collections.abc import Callable

from modhub.retrain.setfit import StepPlanner, planned_steps


def test_all_planned_steps_when_they_fit() -> None:
    assert planned_steps(planned=100, done=3, step_seconds=0.5, remaining=300.0) == 100


def test_steps_cut_to_what_fits_in_the_time_left() -> None:
    # 3 done, 2 s each, 60 s left: 30 more.
    assert planned_steps(planned=1250, done=3, step_seconds=2.0, remaining=60.0) == 33


def test_at_least_one_more_step_and_never_more_than_planned() -> None:
    assert planned_steps(planned=1250, done=3, step_seconds=50.0, remaining=10.0) == 4
    assert planned_steps(planned=5, done=3, step_seconds=0.0, remaining=10.0) == 5


class _Clock:
    """A clock the test moves: each step takes ``per_step`` seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(planner: StepPlanner, clock: _Clock, seconds_per_step: Callable[[int], float]) -> list[int]:
    """Step until the plan (or the bound) ends; the plan after each step."""
    plans, step = [], 0
    while step < planner.steps and not planner.over():
        clock.now += seconds_per_step(step)
        step += 1
        planner.after_step(step)
        plans.append(planner.steps)
    return plans


def test_the_plan_grows_when_the_machine_gets_faster() -> None:
    clock = _Clock()
    planner = StepPlanner(available=1000, seconds=100.0, clock=clock)
    # 5 s per step while probed (plan: ~20 steps), then 0.5 s: the bound would be left unused.
    plans = _run(planner, clock, lambda step: 5.0 if step < 3 else 0.5)
    assert plans[2] < 25, "first fitting from the slow probe"
    assert planner.steps > 100, "fitted again once the steps got faster"
    assert 85.0 <= clock.now <= 100.0, "most of the bound is used, none exceeded"
    assert planner.warmup == max(1, round(0.1 * plans[2])), "warm-up is fixed at the first fitting"


def test_the_plan_shrinks_when_the_machine_gets_slower() -> None:
    clock = _Clock()
    planner = StepPlanner(available=1000, seconds=100.0, clock=clock)
    plans = _run(planner, clock, lambda step: 0.5 if step < 3 else 2.0)
    assert plans[2] >= 150 and planner.steps < plans[2]
    assert clock.now <= 100.0 + 2.0, "the run ends near the bound, not at the first plan's 200 steps"


def test_the_tail_of_the_schedule_keeps_its_plan() -> None:
    clock = _Clock()
    planner = StepPlanner(available=50, seconds=1000.0, clock=clock)
    plans = _run(planner, clock, lambda step: 1.0)
    # Everything fits: 50 steps; no fitting after 80% of them.
    assert plans[-1] == 50 and len(plans) == 50
    assert not planner.after_step(43)
