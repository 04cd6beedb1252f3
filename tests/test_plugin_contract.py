"""The plugin contract, run over every discovered plugin: a new plugin needs no new test."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from attnlab import contract, plugins
from attnlab.data import DataModule
from attnlab.types import DataSpec, Tokens, check_batch
from attnlab_vision import Digits

NAMES = sorted(plugins.available())


def test_the_built_in_plugins_are_discovered_through_entry_points():
    records = plugins.discover()
    assert {"vision", "cnn"} <= set(records)
    assert all(records[n].ok and records[n].source.startswith("attnlab ") for n in ("vision", "cnn"))


@pytest.mark.parametrize("name", NAMES)
def test_plugin_meets_the_contract(name):
    contract.run_checks(name)


@pytest.mark.parametrize(
    ("tokens", "check", "detail"),
    [
        (Tokens(torch.zeros(2, 3, 8), torch.ones(2, 3)), "pad mask", "expected pad_mask to be bool"),
        (Tokens(torch.zeros(2, 3, 8), torch.ones(2, 4, dtype=torch.bool)), "pad mask", "shape (B, T) = (2, 3)"),
        (
            Tokens(torch.zeros(2, 3, 8), torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool)),
            "pad mask",
            "at least one real token (True) per example, got none in examples [1]",
        ),
        (Tokens(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)), "tokens", "expected x of shape (2, T, 8)"),
        (Tokens(torch.zeros(2, 3, 8, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)), "tokens", "float"),
        (Tokens(torch.full((2, 3, 8), torch.nan), torch.ones(2, 3, dtype=torch.bool)), "tokens", "finite"),
        (
            Tokens(torch.zeros(2, 3, 8), torch.ones(2, 3, dtype=torch.bool), torch.zeros(4, 2)),
            "tokens",
            "positions must be (T, A)",
        ),
        ("not tokens", "tokens", "must return attnlab.Tokens"),
    ],
)
def test_contract_violations_are_named(tokens, check, detail):
    with pytest.raises(contract.ContractError) as info:
        contract.check_tokens("demo", tokens, dim=8, batch_size=2)
    assert f"plugin 'demo' failed check '{check}'" in str(info.value)
    assert detail in str(info.value)


def test_nan_in_padding_is_allowed():
    x = torch.zeros(2, 3, 8)
    x[1, 2] = torch.nan
    mask = torch.tensor([[True, True, True], [True, True, False]])
    contract.check_tokens("demo", Tokens(x, mask), dim=8, batch_size=2)


def test_an_inverted_pad_mask_is_caught_through_the_input_lengths():
    real_first = torch.tensor([[True, True, True], [True, False, False]])
    lengths = torch.tensor([30, 10])
    contract.check_pad_mask("demo", Tokens(torch.zeros(2, 3, 8), real_first), lengths)
    with pytest.raises(contract.ContractError, match=r"check 'pad mask'.*length 30 has 1, one of length 10 has 2"):
        contract.check_pad_mask("demo", Tokens(torch.zeros(2, 3, 8), ~real_first | torch.eye(2, 3).bool()), lengths)


def test_unknown_modality_lists_the_known_ones():
    with pytest.raises(Exception, match=r"unknown modality 'nope'; known modalities: .*cnn, .*vision"):
        plugins.get("nope")


# --- the data side --------------------------------------------------------------------


def test_plugin_packages_import_without_lightning_or_torchmetrics():
    """``attnlab-plugins`` and discovery import every plugin: they must stay light (issue 15)."""
    code = (
        "import sys, attnlab_vision, attnlab_cnn, attnlab_speech, attnlab_text;"
        "print(sorted(m for m in ('pytorch_lightning', 'lightning', 'torchmetrics') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", NAMES)
def test_every_dataset_of_a_plugin_is_the_core_datamodule_with_a_declared_source(name):
    plugin = plugins.get(name)
    for path in sorted((plugin.config_dir / "data").glob("*.yaml")):
        node = OmegaConf.load(path)
        assert node._target_ == "attnlab.data.DataModule", path
        source = get_class(node.source._target_)
        assert source in plugin.sources and isinstance(source, type), path


SPEC = DataSpec("sequence", ("cat", "dog"), {"in_channels": 3})


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        (DataSpec("regression", ("a", "b")), "task must be one of sequence, token, label_sequence"),  # type: ignore[arg-type]
        (DataSpec("sequence", ()), "class_names must be a non-empty tuple of strings"),
        (DataSpec("sequence", ("a", "a", "b")), "class_names must be distinct; ['a'] appear more than once"),
        (DataSpec("sequence", ("a", "b"), {"num_classes": 3}), "value 'num_classes' is reserved"),
        (DataSpec("sequence", ("a", "b"), {"shape": torch.zeros(3)}), "value 'shape' must be a bool, int"),
        (DataSpec("sequence", ("a", "b"), {"feature names": ["x"]}), "value names must be identifiers"),
    ],
)
def test_a_broken_data_spec_is_named(spec, detail):
    with pytest.raises(ValueError) as info:
        spec.check()
    assert detail in str(info.value)


def test_a_data_spec_carries_lists_and_strings_to_from_data():
    spec = DataSpec("sequence", ("cat", "dog"), {"feature_names": ["a", "b"], "unit": "mm", "channels": 3})
    spec.check()
    assert spec.info() == {
        "task": "sequence",
        "num_classes": 2,
        "class_names": ["cat", "dog"],
        "feature_names": ["a", "b"],
        "unit": "mm",
        "channels": 3,
    }


@pytest.mark.parametrize(
    ("task", "batch", "detail"),
    [
        ("sequence", {"inputs": 0}, "missing ['target']"),
        ("sequence", {"inputs": 0, "target": torch.zeros(4)}, "target must be a long tensor; got torch.float32"),
        (
            "sequence",
            {"inputs": 0, "target": torch.zeros(4, 3, dtype=torch.long)},
            "one label per example: target (B,)",
        ),
        ("sequence", {"inputs": 0, "target": torch.tensor([0, 2])}, "class ids 0..1; found 2"),
        ("sequence", {"inputs": 0, "target": torch.tensor([0, 1]), "lengths": torch.ones(3)}, "lengths must be"),
        ("token", {"inputs": 0, "target": torch.tensor([0, 1])}, "one label per token: target (B, T)"),
        ("token", {"inputs": 0, "target": torch.tensor([[0, -100], [5, 1]])}, "found 5"),
        ("label_sequence", {"inputs": 0, "target": torch.zeros(2, 3, dtype=torch.long)}, "and no target_lengths"),
        (
            "label_sequence",
            {"inputs": 0, "target": torch.zeros(2, 3, dtype=torch.long), "target_lengths": torch.tensor([1, 4])},
            "target_lengths must be 0..3",
        ),
        (
            "sequence",
            {"inputs": 0, "target": torch.tensor([0, 1]), "soft_target": torch.zeros(2, 3)},
            "soft_target must be (B, C) = (2, 2)",
        ),
    ],
)
def test_a_batch_that_does_not_fit_the_task_is_named(task, batch, detail):
    with pytest.raises(ValueError) as info:
        check_batch(batch, DataSpec(task, ("a", "b")))
    assert detail in str(info.value)


def test_padding_labels_and_real_labels_in_range_pass():
    check_batch({"inputs": 0, "target": torch.tensor([[0, -100], [1, 1]])}, DataSpec("token", ("a", "b")))
    batch = {"inputs": 0, "target": torch.tensor([[1, -100], [0, 1]]), "target_lengths": torch.tensor([1, 2])}
    check_batch(batch, DataSpec("label_sequence", ("a", "b")))


@dataclass(frozen=True)
class FloatTargets(Digits):
    """A source whose collate breaks the batch contract (float targets)."""

    def collate(self, examples):
        batch = super().collate(examples)
        return {**batch, "target": batch["target"].float()}


def test_a_source_breaking_the_batch_contract_fails_the_batch_check():
    datamodule = DataModule(FloatTargets(image_size=16), batch_size=4, seed=0)
    datamodule.setup()
    with pytest.raises(contract.ContractError) as info:
        contract.check_first_batch("demo", datamodule)
    assert str(info.value) == (
        "plugin 'demo' failed check 'batch': FloatTargets (task 'sequence'): target must be a long tensor; "
        "got torch.float32"
    )
