"""SetFit-style contrastive fine-tuning of a sentence encoder (``modhub retrain text --fine-tune``).

As SetFit (Tunstall et al., 2022) does: pairs of training texts are drawn from the
labels (same class: target similarity 1, different classes: 0), and the encoder is
trained so that the cosine similarity of a pair's embeddings matches its target
(sentence-transformers' ``CosineSimilarityLoss``), with AdamW and a linear
warm-up/decay schedule. The head is then fitted on the fine-tuned embeddings.

Seeded (pairs, order, dropout) and bounded: at most ``pairs_per_example`` pairs per
text and ``fine_tune_seconds`` of training, whichever ends first. The learning-rate
schedule is fitted to the time bound: after the first steps the time per step is
measured and the number of steps planned is cut to what fits, so warm-up and decay
complete inside the bound instead of being stopped at a high learning rate. The plan
is fitted again every few steps (``StepPlanner``), so a machine that gets faster or
slower meanwhile neither leaves the bound unused nor runs past it; the last fifth of
the schedule keeps its plan, so the learning rate only ever decays there.

Each step runs the encoder once on the distinct texts of its pairs (both sides in one
batch, padded to the batch's longest text by the module's tokenizer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from modhub.loading.layer import Layer
from modhub.retrain.data import Example
from modhub.retrain.inputs import Inputs
from modhub.retrain.train import TrainConfig

__all__ = ["PAIR_BATCH", "SETFIT_LR", "StepPlanner", "contrastive_fine_tune", "make_pairs", "planned_steps"]

# SetFit's defaults for the encoder ("body"): learning rate 2e-5, batch 16 pairs, 10% warm-up.
SETFIT_LR = 2e-5
PAIR_BATCH = 16
WARMUP = 0.1
# Steps timed before the plan is fitted to the time bound (the first one also pays for
# one-off allocations, so the estimate uses the later ones).
PROBE_STEPS = 3
# Steps between two fittings of the plan, and the share of the plan after which it stays fixed.
REPLAN_EVERY = 10
FIXED_TAIL = 0.2


def planned_steps(planned: int, done: int, step_seconds: float, remaining: float) -> int:
    """Steps of the whole schedule: all ``planned`` if they fit in the ``remaining`` seconds
    at ``step_seconds`` each, else the ``done`` ones plus as many as fit (at least one more)."""
    if step_seconds <= 0:
        return planned
    return max(done + 1, min(planned, done + int(remaining / step_seconds)))


class StepPlanner:
    """How many steps the schedule has, fitted to the time bound from the steps timed so far.

    ``clock`` is injected (``time.perf_counter``) so the rule is tested without waiting.
    """

    def __init__(
        self, available: int, seconds: float, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.available = available
        self.seconds = seconds
        self.steps = available  # shortened once the time per step is known
        # Warm-up length, fixed at the first fitting: a later one never sends the run back into it.
        self.warmup = max(1, round(WARMUP * available))
        self._clock = clock
        self.started = clock()
        self._probe_started = self.started

    def over(self) -> bool:
        """Whether the time bound has passed (the run stops before its next step)."""
        return self._clock() - self.started > self.seconds

    def after_step(self, done: int) -> bool:
        """Call after each step (``done`` steps so far); True when the plan was fitted again."""
        now = self._clock()
        if done == 1:  # the first step also pays for one-off allocations: time the later ones
            self._probe_started = now
            return False
        due = done == PROBE_STEPS or (done > PROBE_STEPS and (done - PROBE_STEPS) % REPLAN_EVERY == 0)
        if not due or done >= (1 - FIXED_TAIL) * self.steps:
            return False
        per_step = (now - self._probe_started) / (done - 1)
        self.steps = planned_steps(self.available, done, per_step, self.seconds - (now - self.started))
        if done == PROBE_STEPS:
            self.warmup = max(1, round(WARMUP * self.steps))
        return True


def make_pairs(labels: np.ndarray, pairs_per_example: int, seed: int) -> np.ndarray:
    """[P, 3] rows (left index, right index, target 1.0/0.0), shuffled.

    Each round gives every example one partner of its own class and one of another
    class (as SetFit's pair generation), so positives and negatives are balanced.
    A class with a single example gets no positive pair.
    """
    rng = np.random.default_rng(seed)
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    rows: list[tuple[int, int, float]] = []
    for _ in range(max(1, pairs_per_example // 2)):
        for i, label in enumerate(labels.tolist()):
            same = by_class[label][by_class[label] != i]
            if len(same):
                rows.append((i, int(rng.choice(same)), 1.0))
            other = np.flatnonzero(labels != label)
            rows.append((i, int(rng.choice(other)), 0.0))
    pairs = np.array(rows, dtype=np.float64)
    return pairs[rng.permutation(len(pairs))]


def contrastive_fine_tune(
    backbone: Layer,
    inputs: Inputs,
    examples: list[Example],
    labels: np.ndarray,
    config: TrainConfig,
    *,
    progress: Any = None,
) -> dict[str, Any]:
    """Train ``backbone`` (a trainable text-embedding Layer) in place on contrastive pairs.

    Returns what was done, for the report: pairs used and planned, steps, seconds,
    whether the time bound stopped it, the learning rate.
    """
    pairs = make_pairs(labels, config.pairs_per_example, config.seed)
    available = (len(pairs) + PAIR_BATCH - 1) // PAIR_BATCH
    torch.manual_seed(config.seed)
    params = [p for p in backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=SETFIT_LR, weight_decay=0.01)
    plan = StepPlanner(available, config.fine_tune_seconds)

    def schedule(step: int) -> float:
        steps, warmup = plan.steps, plan.warmup
        return (step + 1) / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    if progress is not None:
        progress.reset(total=len(pairs))
    used, losses, stopped = 0, [], False
    backbone.train(True)  # dropout on, as in SetFit's training
    try:
        step = 0
        while step < plan.steps:
            if plan.over():
                stopped = True
                break
            batch = pairs[step * PAIR_BATCH : (step + 1) * PAIR_BATCH]
            # One encoder pass over the distinct texts of both sides.
            distinct, inverse = np.unique(batch[:, :2].astype(np.int64), return_inverse=True)
            where = torch.from_numpy(inverse.reshape(-1, 2))
            embedded = backbone.graph(*inputs([examples[int(i)] for i in distinct]))
            similarity = nn.functional.cosine_similarity(embedded[where[:, 0]], embedded[where[:, 1]])
            loss = nn.functional.mse_loss(similarity, torch.from_numpy(batch[:, 2]).float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            used += len(batch)
            losses.append(loss.item())
            step += 1
            if plan.after_step(step) and progress is not None:
                progress.reset(total=min(len(pairs), plan.steps * PAIR_BATCH))
                progress.update(used)
            elif progress is not None:
                progress.update(len(batch))
            if progress is not None:
                progress.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}", refresh=False)
    finally:
        backbone.train(False)
    return {
        "pairs": used,
        "pairs_planned": len(pairs),
        "steps": len(losses),
        "steps_fitted_to_time": plan.steps < available,
        "seconds": time.perf_counter() - plan.started,
        "stopped_by_time": stopped,
        "lr": SETFIT_LR,
        "batch_pairs": PAIR_BATCH,
        "loss_first": losses[0] if losses else None,
        "loss_last": float(np.mean(losses[-10:])) if losses else None,
    }
