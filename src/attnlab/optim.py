"""Learning-rate schedules, built from torch's own schedulers.

A scheduler config is a partial that receives the optimizer and ``total_steps``
(``trainer.estimated_stepping_batches``) and returns a scheduler stepped every batch.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from attnlab.errors import ConfigError


def warmup_cosine(
    optimizer: Optimizer,
    total_steps: int,
    warmup_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.1,
    min_lr_ratio: Annotated[float, Interval(ge=0, le=1)] = 0.01,
) -> LRScheduler:
    """Linear warm-up from ~0 over ``warmup_fraction`` of training, then cosine decay.

    Args:
        optimizer: the optimizer whose learning rate is scheduled.
        total_steps: optimizer steps in the whole run.
        warmup_fraction: share of the steps spent warming up, in ``[0, 1)``.
        min_lr_ratio: final learning rate as a fraction of the peak.
    """
    if not 0.0 <= warmup_fraction < 1.0:
        raise ConfigError(f"scheduler.warmup_fraction={warmup_fraction} must be in [0, 1)")
    total_steps = max(int(total_steps), 1)
    warmup = int(total_steps * warmup_fraction)
    peak = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1), eta_min=peak * min_lr_ratio)
    if warmup == 0:
        return cosine
    ramp = LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])
