"""Every text config file composes with the text modality and every key in it is read.

The tokenizer group exists only with ``modality=text``, and the text models take
``vocab_size`` from the data, so these files are walked here with text data values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

import attnlab_text
from attnlab import config
from attnlab.build import build_model, run_settings
from attnlab.data import DataModule
from attnlab.tasks import AUTO, head_task
from attnlab_text import TextSource
from conftest import compose_config

CONF = Path(attnlab_text.__file__).parent / "conf"
FILES = sorted(str(p.relative_to(CONF)) for p in CONF.rglob("*.yaml"))
INFO = {"task": "sequence", "num_classes": 10, "class_names": list("0123456789"), "vocab_size": 40, "pad_id": 0}


def task_for(cfg, default: str) -> str:
    """The task an explicitly chosen head fits (so that every file's head builds), else ``default``."""
    target = cfg.head._target_
    return default if target == AUTO else head_task(target)


def overrides(rel: str) -> list[str]:
    group, name = Path(rel).parent.as_posix(), Path(rel).stem
    if group == "experiment":
        return [f"experiment={name}"]
    return ["modality=text"] if group == "modality" else ["modality=text", f"{group}={name}"]


@pytest.mark.parametrize("rel", FILES)
def test_text_config_composes_and_every_key_is_read(rel, tmp_path):
    cfg = compose_config(overrides(rel), output_dir=tmp_path)
    run_settings(cfg)
    datamodule = instantiate(cfg.data)  # constructing reads every key; set-up is tested per dataset
    assert isinstance(datamodule, DataModule) and isinstance(datamodule.source, TextSource)
    assert datamodule.save_dir == tmp_path
    with config.data_info({**INFO, "task": task_for(cfg, INFO["task"])}):
        model = build_model(cfg)
    optimizer = model.optimizer_factory(model.parameters())
    model.scheduler_factory(optimizer, total_steps=10)
    assert model.frontend.embed.num_embeddings == INFO["vocab_size"]


def test_tokenizer_choice_reaches_the_data_config(tmp_path):
    for name, cls in (("byte", "ByteTokenizer"), ("bpe", "BPETokenizer"), ("wordpiece", "WordPieceTokenizer")):
        cfg = compose_config(["modality=text", f"tokenizer={name}"], output_dir=tmp_path)
        assert type(instantiate(cfg.data).source.tokenizer).__name__ == cls
    default = compose_config(["modality=text"], output_dir=tmp_path)
    assert type(instantiate(default.data).source.tokenizer).__name__ == "WordTokenizer"
