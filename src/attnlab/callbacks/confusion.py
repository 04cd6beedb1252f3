"""The test-time confusion matrix: a CSV and a PNG in the run folder; in W&B an image and an
interactive confusion-matrix chart with the class names."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytorch_lightning as pl
from annotated_types import Ge
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor

from attnlab.validate import WritableFolder

log = logging.getLogger(__name__)


def class_names(names: Sequence[str] | None, n: int) -> list[str]:
    """``names`` when there are ``n`` of them, else ``0 .. n-1``."""
    if names is not None and len(names) == n:
        return [str(name) for name in names]
    return [str(i) for i in range(n)]


def write_csv(matrix: Tensor, names: list[str], path: Path) -> None:
    """Rows are true classes, columns predicted ones."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *names])
        for name, row in zip(names, matrix.tolist()):
            writer.writerow([name, *row])


def wandb_chart(matrix: Tensor, names: list[str]) -> Any:
    """W&B's own confusion-matrix chart (what ``wandb.plot.confusion_matrix`` draws) from counts.

    ``wandb.plot.confusion_matrix`` wants every prediction; the counts ``(C, C)`` (rows: true)
    give the same table of (actual, predicted, count) with the class names.
    """
    import wandb

    counts = matrix.tolist()
    rows = [[names[i], names[j], counts[i][j]] for i in range(len(names)) for j in range(len(names))]
    table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=rows)
    fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
    return wandb.plot.plot_table("wandb/confusion_matrix/v1", table, fields, {"title": "test confusion matrix"})


class ConfusionMatrix(pl.Callback):
    """Writes the head's test confusion matrix (heads without one, e.g. CTC, are skipped).

    Args:
        dirpath: the run folder; files are ``confusion_matrix.csv`` and ``.png``.
        max_labels: up to this many classes the plot names them and prints the counts.
        class_names: the data's class names (``${from_data:class_names}``); None numbers them.
    """

    def __init__(
        self,
        dirpath: Annotated[str, WritableFolder()],
        max_labels: Annotated[int, Ge(1)] = 30,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.max_labels = max_labels
        self.class_names = list(class_names) if class_names is not None else None

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metric = getattr(pl_module, "test_confusion", None)
        if metric is None or not metric.update_called:
            return
        matrix = metric.compute().cpu()  # (C, C), summed over DDP ranks
        metric.reset()
        if not trainer.is_global_zero:
            return
        names = class_names(self.class_names, matrix.shape[0])
        self.dirpath.mkdir(parents=True, exist_ok=True)
        write_csv(matrix, names, self.dirpath / "confusion_matrix.csv")
        png = self.dirpath / "confusion_matrix.png"
        self._plot(metric, matrix, names, png)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="test/confusion_matrix", images=[str(png)])
                logger.log_metrics({"test/confusion_matrix_chart": wandb_chart(matrix, names)})
        log.info("confusion matrix: %s", png)

    def _plot(self, metric: object, matrix: Tensor, names: list[str], path: Path) -> None:
        """torchmetrics' plot of ``matrix``, drawn on a figure of its own and saved cropped to its contents.

        A ``Figure`` made directly (not through ``pyplot``, which would register it with a GUI
        backend's figure manager) without a layout engine: the saved image is cropped to what
        is drawn (``bbox_inches="tight"``), so long class names are never cut off, and the
        ~300 texts are laid out once per draw rather than again by a constrained layout,
        which torchmetrics' own figure asks for (about a fifth of the plot's time).
        """
        from matplotlib.figure import Figure

        labeled = len(names) <= self.max_labels
        fig = Figure()
        ax = fig.add_subplot()
        metric.plot(val=matrix, ax=ax, add_text=labeled, labels=names if labeled else None)  # type: ignore[attr-defined]
        ax.set_title("test confusion matrix (rows: true, columns: predicted)", fontsize=9)
        fig.savefig(path, dpi=110, bbox_inches="tight")
