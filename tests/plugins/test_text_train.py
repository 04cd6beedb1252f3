"""Text plugin end to end, in-process: sequence and token labelling, evaluation with the saved tokenizer."""

from __future__ import annotations

import json

import pytest
import yaml

from attnlab.evaluate import evaluate
from attnlab.train import train
from conftest import FAST

# A small generated ListOps, so these runs stay quick.
SMALL = [
    "data.source.generation.train=200",
    "data.source.generation.val=32",
    "data.source.generation.test=32",
    "data.source.generation.max_length=40",
]


def read_metrics(run) -> dict[str, float]:
    return json.loads((run / "metrics.json").read_text())


def test_sequence_labelling_with_bpe_and_eval_uses_the_saved_tokenizer(make_config, tmp_path):
    train(
        make_config(
            "modality=text", "tokenizer=bpe", "data.source.tokenizer.vocab_size=280", *FAST, *SMALL, "logger=csv"
        )
    )
    run = tmp_path / "run"
    trained = read_metrics(run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    vocab = json.loads((run / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    assert saved["frontend"]["vocab_size"] == len(vocab) > 259  # from the trained tokenizer, typed by nobody
    assert saved["head"]["num_classes"] == 10 and 0.0 <= trained["test/acc"] <= 1.0
    stamp = (run / "tokenizer" / "tokenizer.json").stat().st_mtime_ns

    eval_cfg = make_config(
        f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "trainer.limit_test_batches=2", "logger=csv", name="eval"
    )
    eval_cfg.paths.output_dir = str(tmp_path / "eval")
    metrics = evaluate(eval_cfg)
    assert metrics["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-6)
    assert (run / "tokenizer" / "tokenizer.json").stat().st_mtime_ns == stamp, "eval must not retrain the tokenizer"


def test_token_labelling_listops_depth(make_config, tmp_path):
    train(make_config("experiment=listops_depth", *FAST, *SMALL, "logger=csv"))
    metrics = read_metrics(tmp_path / "run")
    assert {"train/acc", "train/f1", "val/acc", "val/f1", "test/acc", "test/f1"} <= set(metrics)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["head"]["_target_"] == "attnlab.heads.TokenHead" and saved["head"]["num_classes"] == 5


def test_conll_tagging_with_wordpiece(make_config, tmp_path):
    rows = ["EU B-ORG", "rejects O", "German B-MISC", "lamb O", "", "Peter B-PER", "Blackburn I-PER", ""]
    (tmp_path / "train.conll").write_text("\n".join(rows * 20) + "\n")
    files = [f"data.source.{s}={tmp_path / 'train.conll'}" for s in ("train", "val", "test")]
    train(make_config("modality=text", "data=conll", "tokenizer=wordpiece", *files, *FAST, "logger=csv"))  # no head=
    metrics = read_metrics(tmp_path / "run")
    assert metrics["test/acc"] >= 0.0 and "test/f1" in metrics
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["head"]["_target_"] == "attnlab.heads.TokenHead"  # the data's task chose it
    assert json.loads((tmp_path / "run" / "labels.json").read_text())["labels"] == [
        "B-MISC",
        "B-ORG",
        "B-PER",
        "I-PER",
        "O",
    ]
