"""The plugin contract, run over every discovered plugin: a new plugin needs no new test."""

from __future__ import annotations

import pytest
import torch

from attnlab import contract, plugins
from attnlab.types import Tokens

NAMES = sorted(plugins.available())


def test_the_built_in_plugins_are_discovered_through_entry_points():
    records = plugins.discover()
    assert {"vision", "cnn"} <= set(records)
    assert all(records[n].ok and records[n].source.startswith("attnlab ") for n in ("vision", "cnn"))


@pytest.mark.parametrize("name", NAMES)
def test_plugin_meets_the_contract(name):
    contract.run_checks(name)


@pytest.mark.parametrize(
    ("tokens", "detail"),
    [
        (Tokens(torch.zeros(2, 3, 8), torch.ones(2, 3)), "pad_mask must be bool"),
        (Tokens(torch.zeros(2, 3, 8), torch.ones(2, 4, dtype=torch.bool)), "pad_mask must be (B, T)"),
        (Tokens(torch.zeros(2, 3, 8), torch.tensor([[1, 0, 0], [0, 0, 0]], dtype=torch.bool)), "at least one real"),
        (Tokens(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)), "expected x of shape (2, T, 8)"),
        ("not tokens", "must return attnlab.Tokens"),
    ],
)
def test_contract_violations_are_named(tokens, detail):
    with pytest.raises(contract.ContractError) as info:
        contract.check_tokens("demo", tokens, dim=8, batch_size=2)
    assert "plugin 'demo' failed check 'tokens'" in str(info.value)
    assert detail in str(info.value)


def test_unknown_modality_lists_the_known_ones():
    with pytest.raises(Exception, match=r"unknown modality 'nope'; known modalities: .*cnn, .*vision"):
        plugins.get("nope")
