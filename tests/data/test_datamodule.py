"""The core DataModule's set-up: spec, empty splits, a single class, the split summary, bad inputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from attnlab.data import DataModule, LoadContext, SourceData, Split
from attnlab.data.module import summary
from attnlab.errors import ConfigError, DataError


class Numbers(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"inputs": torch.tensor([float(i)]), "target": i % 2}


@dataclass(frozen=True)
class Files:
    """Examples read from files; a file holding ``bad`` cannot be decoded."""

    root: str
    sizes: tuple[int, int, int] = (6, 2, 2)
    names: tuple[str, ...] = ("even", "odd")

    def load(self, context: LoadContext) -> SourceData:
        splits = []
        for split, n in zip(("train", "val", "test"), self.sizes):
            files = [Path(self.root) / f"{split}{i}.txt" for i in range(n)]
            labels = np.arange(n) % len(self.names)
            splits.append(Split(Numbers(n), labels=labels, files=files, origin=f"{self.root}/{split}"))
        return SourceData(*splits, task="sequence", class_names=list(self.names))

    def collate(self, examples: Sequence[dict]) -> dict:
        return {
            "inputs": torch.stack([ex["inputs"] for ex in examples]),
            "target": torch.tensor([ex["target"] for ex in examples]),
        }

    def check_file(self, path: Path) -> None:
        if path.read_text() == "bad":
            raise ValueError("not a number")


def write(root: Path, bad: Sequence[str] = ()) -> None:
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for i in range(n):
            (root / f"{split}{i}.txt").write_text("bad" if f"{split}{i}" in bad else str(i))


def test_bad_files_are_left_out_of_their_split_and_listed(tmp_path, caplog):
    write(tmp_path, bad=["train1", "test0"])
    dm = DataModule(Files(str(tmp_path)), batch_size=2, save_dir=str(tmp_path / "run"), seed=0)
    with caplog.at_level(logging.INFO):
        dm.setup()
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [5, 2, 1]
    listed = (tmp_path / "run" / "bad_files.txt").read_text().splitlines()
    assert listed == [f"{tmp_path / n}.txt\tcannot be decoded: ValueError: not a number" for n in ("test0", "train1")]
    assert "examples: train 5, val 2, test 1; per class (train/val/test): even 3/1/0, odd 2/1/1" in caplog.text


def test_strict_mode_names_the_first_few_and_counts_the_rest(tmp_path):
    write(tmp_path, bad=["train0", "train1", "train2", "train3", "val0"])
    dm = DataModule(Files(str(tmp_path)), bad_files="error", save_dir=str(tmp_path / "run"), seed=0)
    with pytest.raises(DataError) as info:
        dm.setup()
    message = str(info.value)
    assert message.startswith("5 input(s) cannot be read (data.bad_files=error): ")
    assert f"{tmp_path / 'train0.txt'}: cannot be decoded" in message and "; and 2 more;" in message
    assert f"all listed in {tmp_path / 'run' / 'bad_files.txt'}" in message and "\n" not in message


def test_a_split_left_empty_is_one_line(tmp_path):
    write(tmp_path, bad=["val0", "val1"])
    with pytest.raises(DataError, match=r"the val split \(.*/val\) has no examples; all its 2 unreadable input"):
        DataModule(Files(str(tmp_path)), seed=0).setup()


def test_a_single_class_is_one_line_with_the_counts(tmp_path):
    write(tmp_path)
    with pytest.raises(DataError, match=r"a single class 'all' \(train: 6, val: 2, test: 2 examples\)"):
        DataModule(Files(str(tmp_path), names=("all",)), seed=0).setup()


def test_the_spec_is_checked_at_set_up(tmp_path):
    write(tmp_path)
    with pytest.raises(DataError, match=r"Files gives a broken data spec: class_names must be distinct"):
        DataModule(Files(str(tmp_path), names=("a", "a")), seed=0).setup()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(batch_size=0), "data.batch_size=0 is out of range"),
        (dict(num_workers=-1), "data.num_workers=-1 is out of range"),
        (dict(bad_files="ignore"), "data.bad_files='ignore' is unknown; choose skip or error"),
    ],
)
def test_bad_loader_settings_are_refused_at_once(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        DataModule(Files(str(tmp_path)), **kwargs)


def test_a_source_that_is_not_one_is_named():
    with pytest.raises(
        ConfigError, match=r"data.source must be a dataset source with load\(\) and collate\(\); got str"
    ):
        DataModule("digits")  # type: ignore[arg-type]


def test_raw_features_need_a_source_that_gives_them(tmp_path):
    write(tmp_path)
    dm = DataModule(Files(str(tmp_path)), seed=0)
    with pytest.raises(ConfigError, match="Files gives no raw features per example"):
        dm.raw_features("train")


def test_the_summary_counts_examples_per_split_and_class():
    split = Split(Numbers(3), labels=np.array([0, 0, 1]))
    data = SourceData(split, split.subset([0]), split.subset([2]), "sequence", ["a", "b"])
    assert summary(data) == (
        "sequence task, 2 classes; examples: train 3, val 1, test 1; per class (train/val/test): a 2/1/0, b 1/0/1"
    )
