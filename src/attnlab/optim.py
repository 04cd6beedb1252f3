"""What the optimizer sees: parameter groups for weight decay, and learning-rate schedules.

The optimizer config is a partial that receives :func:`param_groups`; a scheduler config is
a partial that receives the optimizer and ``total_steps`` (``trainer.estimated_stepping_batches``)
and returns a scheduler stepped every batch.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol, runtime_checkable

from annotated_types import Interval
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from attnlab.errors import ConfigError


@runtime_checkable
class NoWeightDecay(Protocol):
    """A module holding parameters that weight decay must leave alone (position tables, CLS token)."""

    def no_weight_decay(self) -> list[nn.Parameter]: ...


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The model's trainable parameters in two optimizer groups: decayed and not.

    Weight decay skips what it only harms (timm, DeiT, nanoGPT): every parameter with at
    most one dimension (biases, the scales and shifts of LayerNorm and BatchNorm) and
    every parameter a module lists in its ``no_weight_decay()`` (learned position tables,
    the CLS token). The first group takes the optimizer's own ``weight_decay``
    (``optimizer.weight_decay``); the second sets it to 0. Empty groups are left out.
    """
    skip = {id(p) for m in model.modules() if isinstance(m, NoWeightDecay) for p in m.no_weight_decay()}
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or id(p) in skip else decay).append(p)
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


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
