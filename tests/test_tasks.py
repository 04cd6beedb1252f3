"""The head follows the data: ``head=auto`` resolves to the task's head, a head that cannot fit is one line."""

from __future__ import annotations

import json

import pytest
import yaml
from omegaconf import OmegaConf

from attnlab import config
from attnlab.errors import ConfigError
from attnlab.heads import CTCHead, SequenceHead, TokenHead
from attnlab.tasks import AUTO, HEAD_OF_TASK, resolve_head
from attnlab.train import train
from attnlab.types import Head
from conftest import FAST, compose_config

HEADS = {
    "sequence": "attnlab.heads.SequenceHead",
    "token": "attnlab.heads.TokenHead",
    "label_sequence": "attnlab.heads.CTCHead",
}


@pytest.mark.parametrize("task", sorted(HEADS))
def test_auto_becomes_the_head_of_the_task_and_keeps_the_users_settings(task, tmp_path):
    cfg = compose_config(["head.dropout=0.25"], output_dir=tmp_path)
    assert cfg.head._target_ == AUTO
    resolve_head(cfg, task)
    assert cfg.head._target_ == HEADS[task] and cfg.head.dropout == 0.25
    expected = OmegaConf.load(config.CONFIG_DIR / "head" / f"{HEAD_OF_TASK[task]}.yaml")
    assert set(cfg.head) == set(expected)  # the head file's own keys, nothing else


@pytest.mark.parametrize(
    ("head", "task", "message"),
    [
        ("ctc", "sequence", "head=ctc predicts a label sequence per example, but CIFAR has one label per example"),
        ("token", "sequence", "head=token predicts one label per token, but CIFAR has one label per example"),
        ("sequence", "token", "head=sequence predicts one label per example, but CIFAR has one label per token"),
        (
            "sequence",
            "label_sequence",
            "but CIFAR has a label sequence per example (task 'label_sequence'); use head=ctc",
        ),
    ],
)
def test_a_head_that_cannot_fit_names_the_one_that_would(head, task, message, tmp_path):
    cfg = compose_config([f"head={head}"], output_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_head(cfg, task, "CIFAR")
    text = str(info.value)
    assert message in text and "\n" not in text
    assert f"use head={HEAD_OF_TASK[task]}, or leave head out" in text


def test_a_setting_only_another_head_has_is_named_once_it_is_set(tmp_path):
    cfg = compose_config(["head.pooling=mean"], output_dir=tmp_path)
    resolve_head(cfg, "sequence")
    assert cfg.head.pooling == "mean"
    untouched = compose_config([], output_dir=tmp_path)
    resolve_head(untouched, "token")  # the sequence head's default pooling is dropped for a token head
    assert "pooling" not in untouched.head
    cfg = compose_config(["head.pooling=mean"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"head.pooling is not a setting of head=token, the head of the data"):
        resolve_head(cfg, "token")


def test_ctc_on_images_is_one_line_before_training(make_config, tmp_path):
    with pytest.raises(ConfigError, match=r"head=ctc predicts a label sequence per example, but Digits has one label"):
        train(make_config("head=ctc", *FAST, "~logger"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_listops_depth_trains_with_no_head_given(make_config, tmp_path):
    small = ["data.source.generation.train=120", "data.source.generation.val=16", "data.source.generation.test=16"]
    train(make_config("modality=text", "data=listops_depth", *small, *FAST, "~logger"))
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["head"]["_target_"] == "attnlab.heads.TokenHead" and saved["head"]["num_classes"] == 5
    assert "test/f1" in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_spoken_digit_strings_train_with_no_head_given(make_config, tmp_path):
    small = [
        "data.source.generation.count=40",
        "data.source.generation.accents=[en-us,en]",
        "data.source.generation.variants=[m1,m3,f1,f4,m7]",
    ]
    cfg = make_config("modality=speech", "data=spoken_digit_strings", *small, *FAST, "data.batch_size=8", "~logger")
    cfg.optimized_metric = "val/cer"  # until the objective follows the head (compose)
    train(cfg)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["head"]["_target_"] == "attnlab.heads.CTCHead"
    assert "test/cer" in json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.parametrize("cls", [SequenceHead, TokenHead, CTCHead])
def test_every_head_keeps_the_head_protocol(cls):
    """What the module calls on a head (:class:`attnlab.types.Head`), and the task it declares."""
    members = {name for name in vars(Head) if not name.startswith("_")} | {"task", "needs_cls"}
    assert members <= set(dir(cls)) and cls.task in HEADS
    head = cls(dim=8, num_classes=3)
    assert isinstance(head.needs_cls, bool) and head.metrics() is not None
