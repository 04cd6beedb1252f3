"""The test confusion matrix callback: its CSV counts and its PNG."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import matplotlib.pyplot as plt
import torch
from PIL import Image
from torchmetrics.classification import MulticlassConfusionMatrix

from attnlab.callbacks import ConfusionMatrix


def _write(tmp_path, names, preds, target):
    metric = MulticlassConfusionMatrix(num_classes=len(names))
    metric.update(preds, target)
    trainer = SimpleNamespace(is_global_zero=True, loggers=[])
    ConfusionMatrix(str(tmp_path), class_names=names).on_test_epoch_end(trainer, SimpleNamespace(test_confusion=metric))
    return tmp_path / "confusion_matrix.csv", tmp_path / "confusion_matrix.png"


def test_counts_and_a_figure_cropped_to_its_labels(tmp_path):
    target = torch.tensor([0, 0, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 2, 0, 2])
    short, png = _write(tmp_path / "short", ["a", "b", "c"], preds, target)
    rows = list(csv.reader(short.open()))
    assert rows == [
        ["true \\ predicted", "a", "b", "c"],
        ["a", "1", "1", "0"],  # counted by hand: rows are true classes
        ["b", "0", "1", "0"],
        ["c", "1", "0", "2"],
    ]
    names = ["a class with a long name", "another long-named class", "c"]
    _, long_png = _write(tmp_path / "long", names, preds, target)
    small, large = Image.open(png), Image.open(long_png)
    # The image grows to hold long labels (cropped to what is drawn), rather than cutting them off.
    assert large.width > small.width + 50 and large.height > small.height + 50
    pixels = torch.tensor(list(small.convert("L").getdata()))
    assert pixels.float().std() > 20  # something is drawn
    assert plt.get_fignums() == []  # no figure left registered with pyplot
