"""The LightningModule: front-end → backbone → head, with loss, metrics and optimizer.

It is built from parts (plain modules and factories), never from a config object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torchmetrics import MeanMetric, MetricCollection

from attnlab.backbone import Backbone
from attnlab.errors import ConfigError
from attnlab.optim import param_groups
from attnlab.types import Batch, Encoded, Head, Tokens

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[..., Any]


class AttnlabModule(pl.LightningModule):
    """Trains any front-end with the shared backbone and a task head.

    Args:
        frontend: a plugin's module turning a batch into ``Tokens``.
        backbone: the shared encoder.
        head: a task head (an ``nn.Module`` keeping the :class:`~attnlab.types.Head` protocol).
        optimizer: partial taking parameter groups (config ``optimizer``; ``attnlab.optim.param_groups``).
        scheduler: partial taking the optimizer and ``total_steps``, or None.
        compile: run the forward pass through ``torch.compile``.
    """

    def __init__(
        self,
        frontend: nn.Module,
        backbone: Backbone,
        head: Head,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(head, nn.Module):
            raise ConfigError(
                f"head must be a torch.nn.Module with the attnlab.types.Head methods; got {type(head).__name__}"
            )
        if head.needs_cls and not backbone.has_cls:
            raise ConfigError("head.pooling=cls needs backbone.cls_token=true; or set head.pooling=mean")
        self.frontend = frontend
        self.backbone = backbone
        self.head = head
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        metrics = head.metrics()
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_confusion = head.confusion()
        self.flops_per_batch: int | None = None  # read by Lightning's ThroughputMonitor (None: not measured)
        self._encode = torch.compile(self._encode_eager) if compile else self._encode_eager
        self._tokens_checked = False
        self.train_loss = MeanMetric(nan_strategy="disable")  # the epoch's mean training loss (see _log)
        self._metrics_logged: set[str] = set()  # stages whose metrics Lightning holds this epoch

    def _encode_eager(self, batch: Batch) -> tuple[Tensor, Encoded]:
        encoded = self.backbone(self.frontend(batch))
        return self.head(encoded), encoded

    def _check_tokens(self, batch: Batch) -> None:
        """Once per run: the front-end keeps the ``Tokens`` contract, or a one-line error naming it.

        Runs the front-end in eval mode without gradients, so that batch-norm statistics,
        running feature normalisation and random augmentation are left as they were.
        """
        training = self.frontend.training
        self.frontend.eval()
        try:
            with torch.no_grad():
                tokens = self.frontend(batch)
        finally:
            self.frontend.train(training)
        try:
            if not isinstance(tokens, Tokens):
                raise ValueError(f"it returned a {type(tokens).__name__}, not attnlab.Tokens")
            tokens.check()
        except ValueError as exc:
            name = f"{type(self.frontend).__module__}.{type(self.frontend).__qualname__}"
            raise ConfigError(
                f"the front-end {name} breaks the Tokens contract: {exc} (see `attnlab-plugins check`)"
            ) from None
        self._tokens_checked = True

    def forward(self, batch: Batch, return_attention: bool = False) -> tuple[Tensor, Encoded]:
        """Logits and the encoding; with ``return_attention`` the encoding holds the maps."""
        if not self._tokens_checked:
            self._check_tokens(batch)
        if return_attention:
            encoded = self.backbone(self.frontend(batch), return_attention=True)
            return self.head(encoded), encoded
        return self._encode(batch)

    def _step(self, batch: Batch, stage: str) -> Tensor:
        logits, encoded = self(batch)
        loss = self.head.loss(logits, encoded.pad_mask, batch)
        metrics = getattr(self, f"{stage}_metrics")
        outputs = self.head.for_metrics(logits.detach(), encoded.pad_mask, batch)
        metrics.update(*outputs)
        if stage == "test" and self.test_confusion is not None:
            self.test_confusion.update(*outputs)
        self._log(stage, loss, metrics, len(batch["target"]))
        return loss

    def _log(self, stage: str, loss: Tensor, metrics: MetricCollection, size: int) -> None:
        """Logs the loss and metrics with as few ``self.log`` calls per step as give the same curves.

        Every ``self.log`` costs a fraction of a millisecond on CPU, as much as a small model's
        step on a GPU. Lightning keeps a logged Metric by reference and computes it at the epoch's
        end, so metrics (and the training loss's epoch mean, a ``MeanMetric``) are logged once
        per epoch; the training loss's step value and the learning rate only on the steps whose
        values reach the loggers (``trainer.log_every_n_steps``). The keys are Lightning's for a
        value logged per step and per epoch: ``train/loss_step``, ``train/loss_epoch`` and
        ``train/loss`` (for callbacks: the epoch mean).
        """
        if self._trainer is None:  # a step called by hand: nothing to log to (Lightning's self.log would drop it too)
            return
        if stage == "train":
            self.train_loss.update(loss.detach().expand(size))  # one value per example: weighted by batch size
            if (self.global_step + 1) % self.trainer.log_every_n_steps == 0 or self.trainer.fast_dev_run:
                self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=size)
                self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        else:  # epoch values averaged over DDP ranks
            self.log(
                f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True
            )
        if stage in self._metrics_logged:
            return
        self._metrics_logged.add(stage)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        if stage == "train":
            self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True, prog_bar=True)
            self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, logger=False)

    def on_train_epoch_start(self) -> None:
        self._metrics_logged.discard("train")

    def on_validation_epoch_start(self) -> None:
        self._metrics_logged.discard("val")

    def on_test_epoch_start(self) -> None:
        self._metrics_logged.discard("test")

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(param_groups(self))  # no weight decay on norms, biases, tables
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer, total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
