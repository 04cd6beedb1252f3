"""Parameter counts and the measured memory of attention, logged once when a run starts.

Every variant of attention (scoring, normalisation, top-k, window, positions) or a
recurrent baseline trades memory and parameters for something; :class:`ModelStats` puts
both in the run log and in every logger, so sweeps can be compared on them.

Memory is measured, not estimated: one real training batch goes through the backbone
with autograd recording (as in training, so tensors saved for the backward count), and
:class:`LiveTensorBytes` follows every tensor the forward creates, through PyTorch's
dispatcher, until it is freed. The same method works on CPU (which keeps no allocator
statistics) and on GPUs. It counts tensors, not a kernel's internal scratch space, nor
the allocator's rounding or caching.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from attnlab.backbone import SelfAttention
from attnlab.types import Tokens

log = logging.getLogger("attnlab.callbacks.model_stats")


class LiveTensorBytes(TorchDispatchMode):
    """Follows the bytes of the tensors created under this mode while they are alive.

    A storage counts from the op that allocates it until the last tensor on it made
    under the mode is freed (views share their base's storage and count once; views and
    in-place results of tensors made before the mode count nothing). :meth:`open` and
    :meth:`close` bracket an interval (they nest) and give its peak above its start.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, tensors alive]
        self.current = 0
        self.intervals: list[list[int]] = []  # open intervals: [bytes at the start, peak]

    def open(self) -> None:
        self.intervals.append([self.current, self.current])

    def close(self) -> int:
        """The peak bytes alive during the innermost open interval, above its start."""
        start, peak = self.intervals.pop()
        return peak - start

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, Tensor):
                self._track(tensor, given)
        return out

    def _track(self, tensor: Tensor, given: set[int]) -> None:
        storage = tensor.untyped_storage()
        address, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or (address in given and address not in self.live):
            return
        if address not in self.live:
            self.live[address] = [size, 0]
            self.current += size
            for interval in self.intervals:
                interval[1] = max(interval[1], self.current)
        self.live[address][1] += 1
        weakref.finalize(tensor, self._release, address)

    def _release(self, address: int) -> None:
        entry = self.live.get(address)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[address]


def measure_backbone(backbone: nn.Module, tokens: Tokens) -> dict[str, int]:
    """Peak bytes of one forward of ``backbone`` on ``tokens``, and of its largest attention layer.

    Autograd records (tensors saved for the backward count, as in training); call it in
    eval mode, so dropout draws no random numbers.

    Returns:
        ``backbone_peak_bytes``, ``attention_peak_bytes`` (0 without attention layers),
        ``attention_layers`` and ``seq_len`` (the tokens' ``T``).
    """
    mode = LiveTensorBytes()
    layer_peaks: list[int] = []
    attentions = [m for m in backbone.modules() if isinstance(m, SelfAttention)]
    handles = []
    for module in attentions:
        handles.append(module.register_forward_pre_hook(lambda *_: mode.open()))
        handles.append(module.register_forward_hook(lambda *_: layer_peaks.append(mode.close())))
    try:
        with torch.enable_grad(), mode:
            mode.open()
            encoded = backbone(tokens)
            backbone_peak = mode.close()
            del encoded
    finally:
        for handle in handles:
            handle.remove()
    return {
        "backbone_peak_bytes": backbone_peak,
        "attention_peak_bytes": max(layer_peaks, default=0),
        "attention_layers": len(attentions),
        "seq_len": int(tokens.x.shape[1]),
    }


def count_parameters(model: nn.Module) -> dict[str, int]:
    """All parameters and the trainable ones, of the whole model and of its backbone."""
    backbone = getattr(model, "backbone", model)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "params_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "backbone_params": sum(p.numel() for p in backbone.parameters()),
    }


class ModelStats(pl.Callback):
    """At the start of fitting, logs ``model/*``: parameter counts and measured peak memory.

    Keys: ``params``, ``params_trainable``, ``backbone_params``, ``backbone_peak_bytes``
    (one forward of the backbone on the first training batch), ``attention_peak_bytes``
    (the largest attention layer's share of it; 0 for a recurrent backbone),
    ``attention_layers``, ``seq_len`` and ``batch_size`` of that batch. They go to the run
    log and to every logger as hyperparameters (W&B: the run's config), so runs of a sweep
    can be compared on them. The measurement runs once, on global rank zero, in eval mode
    under a forked random state: training sees the same model and random numbers as
    without this callback.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        stats = count_parameters(pl_module)
        if trainer.datamodule is not None and hasattr(pl_module, "frontend") and hasattr(pl_module, "backbone"):
            stats.update(self._memory(trainer, pl_module))
        else:
            log.warning("model stats: no datamodule or no frontend/backbone; memory not measured")
        self._report(trainer, stats)

    @staticmethod
    def _memory(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int]:
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        was_training = pl_module.training
        with torch.random.fork_rng(devices=devices):  # the shuffling sampler draws a seed
            batch = next(iter(trainer.datamodule.train_dataloader()))
            batch = trainer.strategy.batch_to_device(batch, pl_module.device)
            pl_module.eval()
            try:
                with torch.no_grad():
                    tokens = pl_module.frontend(batch)
                stats = measure_backbone(pl_module.backbone, tokens)
            finally:
                pl_module.train(was_training)
        stats["batch_size"] = int(tokens.x.shape[0])
        return stats

    @staticmethod
    @rank_zero_only
    def _report(trainer: pl.Trainer, stats: dict[str, int]) -> None:
        mib = {k: f"{v / 2**20:.2f} MiB" for k, v in stats.items() if k.endswith("_bytes")}
        log.info(
            "model: %s parameters (%s trainable, backbone %s); peak memory of one forward at T=%s, batch %s: "
            "backbone %s, largest attention layer %s (%s layers)",
            f"{stats['params']:,}",
            f"{stats['params_trainable']:,}",
            f"{stats['backbone_params']:,}",
            stats.get("seq_len", "?"),
            stats.get("batch_size", "?"),
            mib.get("backbone_peak_bytes", "not measured"),
            mib.get("attention_peak_bytes", "not measured"),
            stats.get("attention_layers", "?"),
        )
        for logger in trainer.loggers:
            logger.log_hyperparams({f"model/{k}": v for k, v in stats.items()})
