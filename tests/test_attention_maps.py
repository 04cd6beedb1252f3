"""Attention maps: softmax weights, rollout against a naive reference, no effect on
training, and the callback's files for vision, text and speech runs."""

from __future__ import annotations

import functools
import json
import logging

import pytest
import torch

from attnlab import config
from attnlab.backbone import Encoder, SelfAttention
from attnlab.build import build_callbacks
from attnlab.callbacks import AttentionMaps
from attnlab.explain import attention_rollout, example_attention, token_relevance
from attnlab.heads import SequenceHead
from attnlab.module import AttnlabModule
from attnlab.train import train
from attnlab.types import Tokens
from attnlab_text import TokenEmbedding
from attnlab_vision.maps import PatchOverlay
from conftest import FAST

LENGTHS = torch.tensor([7, 4, 1])


def padded_tokens(dim: int = 16) -> Tokens:
    torch.manual_seed(0)
    pad_mask = torch.arange(7)[None, :] < LENGTHS[:, None]  # (3, 7)
    return Tokens(x=torch.randn(3, 7, dim), pad_mask=pad_mask)


@pytest.mark.parametrize("cls_token", [False, True])
@pytest.mark.parametrize("window", [None, 2])
def test_maps_sum_to_one_over_real_keys_and_are_zero_on_padded_keys(cls_token, window):
    torch.manual_seed(1)
    attention = functools.partial(SelfAttention, window=window)
    encoder = Encoder(dim=16, depth=2, heads=4, attention=attention, cls_token=cls_token).eval()
    tokens = padded_tokens()
    maps = encoder(tokens, return_attention=True).attention
    real = tokens.pad_mask if not cls_token else torch.cat([torch.ones(3, 1, dtype=torch.bool), tokens.pad_mask], 1)
    t = real.shape[1]
    assert len(maps) == 2
    for weights in maps:
        assert weights.shape == (3, 4, t, t)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, t))
        # A real query gives padded keys nothing (a padded query's row is never read).
        padded_key_of_real_query = real[:, None, :, None] & ~real[:, None, None, :]  # (B, 1, T', T')
        assert (weights[padded_key_of_real_query.expand_as(weights)] == 0).all()
        if window is not None:
            i, j = torch.meshgrid(torch.arange(t), torch.arange(t), indexing="ij")
            assert (weights[:, :, (i - j).abs() > window] == 0).all()


def naive_rollout(layers: list[list[list[list[float]]]]) -> list[list[float]]:
    """Abnar & Zuidema with loops: per layer mean over heads, ½A + ½I, rows renormalised,
    then R = Â_L ⋯ Â_1."""
    n = len(layers[0][0])
    result = [[float(i == j) for j in range(n)] for i in range(n)]
    for heads in layers:
        mean = [[sum(h[i][j] for h in heads) / len(heads) for j in range(n)] for i in range(n)]
        mixed = [[0.5 * mean[i][j] + 0.5 * (i == j) for j in range(n)] for i in range(n)]
        mixed = [[v / sum(row) for v in row] for row in mixed]
        result = [[sum(mixed[i][k] * result[k][j] for k in range(n)) for j in range(n)] for i in range(n)]
    return result


# Two layers, two heads, three real tokens and one padded one (whose key gets no weight).
LAYER_1 = [
    [[0.7, 0.2, 0.1, 0.0], [0.1, 0.8, 0.1, 0.0], [0.3, 0.3, 0.4, 0.0], [0.5, 0.25, 0.25, 0.0]],
    [[0.2, 0.2, 0.6, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.1, 0.9, 0.0], [0.2, 0.4, 0.4, 0.0]],
]
LAYER_2 = [
    [[0.1, 0.1, 0.8, 0.0], [0.6, 0.3, 0.1, 0.0], [0.25, 0.5, 0.25, 0.0], [1.0, 0.0, 0.0, 0.0]],
    [[0.9, 0.05, 0.05, 0.0], [0.2, 0.2, 0.6, 0.0], [0.4, 0.4, 0.2, 0.0], [0.3, 0.3, 0.4, 0.0]],
]


def test_rollout_matches_a_naive_reference_and_ignores_padding():
    layers = [torch.tensor([LAYER_1]), torch.tensor([LAYER_2])]  # 2 x (1, H=2, 4, 4)
    mask = torch.tensor([[True, True, True, False]])
    rollout = attention_rollout(layers, mask)[0]  # (4, 4)
    real = [[[row[:3] for row in head[:3]] for head in layer] for layer in (LAYER_1, LAYER_2)]
    expected = torch.tensor(naive_rollout(real))
    torch.testing.assert_close(rollout[:3, :3], expected)
    assert (rollout[3] == 0).all() and (rollout[:, 3] == 0).all()
    torch.testing.assert_close(rollout[:3].sum(-1), torch.ones(3))

    with_cls = token_relevance(rollout[None], mask, has_cls=True)[0]  # token 0 is CLS
    torch.testing.assert_close(with_cls, torch.cat([expected[0, 1:] / expected[0, 1:].sum(), torch.zeros(1)]))
    pooled = token_relevance(rollout[None], mask, has_cls=False)[0]
    torch.testing.assert_close(pooled, torch.cat([expected.mean(0), torch.zeros(1)]))


def test_example_attention_keeps_each_examples_real_tokens():
    encoder = Encoder(dim=16, depth=2, heads=2, cls_token=True).eval()
    tokens = padded_tokens()
    maps = encoder(tokens, return_attention=True).attention
    examples = example_attention(maps, tokens.pad_mask, has_cls=True)
    for example, n in zip(examples, LENGTHS.tolist()):
        assert example.weights.shape == (2, 2, n + 1, n + 1) and example.rollout.shape == (n + 1, n + 1)
        assert example.relevance.shape == (n,) and example.input_rollout.shape == (n, n)
        torch.testing.assert_close(example.relevance.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("cls_token", [False, True])
def test_asking_for_attention_does_not_change_the_logits(cls_token):
    torch.manual_seed(0)
    module = AttnlabModule(
        frontend=TokenEmbedding(vocab_size=20, dim=16),
        backbone=Encoder(dim=16, depth=2, heads=2, cls_token=cls_token),
        head=SequenceHead(dim=16, num_classes=3, pooling="auto"),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
    ).eval()
    ids = torch.randint(3, 20, (3, 7)) * (torch.arange(7)[None, :] < LENGTHS[:, None])
    batch = {"inputs": ids, "lengths": LENGTHS, "target": torch.tensor([0, 1, 2])}
    with torch.no_grad():
        plain, encoded = module(batch)
        with_maps, mapped = module(batch, return_attention=True)
    assert encoded.attention is None and len(mapped.attention) == 2
    torch.testing.assert_close(with_maps, plain, atol=1e-5, rtol=1e-5)


def test_the_callback_is_built_only_when_turned_on(make_config):
    with config.data_info({"class_names": [str(d) for d in range(10)]}):  # the confusion matrix's names
        plain, drawn = build_callbacks(make_config()), build_callbacks(make_config("attention_maps=true"))
    assert not any(isinstance(c, AttentionMaps) for c in plain)
    (maps,) = [c for c in drawn if isinstance(c, AttentionMaps)]
    assert isinstance(maps.view, PatchOverlay) and maps.view.patch_size == 16


def test_maps_leave_training_exactly_as_it_was(make_config, tmp_path):
    """Epoch 1's shuffling and dropout draw from the RNG after epoch 0's maps were drawn,
    so its losses (and the final weights, which give val/loss) match only if the maps
    changed neither the RNG nor a module's train/eval mode."""
    metrics = []
    for maps in ("false", "true"):
        cfg = make_config(
            *FAST,
            "~logger",
            "test=false",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "callbacks.attention_maps.examples=1",
        )
        cfg.attention_maps = maps == "true"
        cfg.paths.output_dir = str(tmp_path / maps)
        train(cfg)
        metrics.append(json.loads((tmp_path / maps / "metrics.json").read_text()))
    assert {"train/loss", "val/loss"} <= set(metrics[0])
    assert metrics[0] == metrics[1]
    drawn = sorted(p.name for p in (tmp_path / "true" / "attention").rglob("*.png"))
    assert len(drawn) == 2 * 1 * 5 and not (tmp_path / "false" / "attention").exists()


def expected_files(examples: int, layers: int, heads: int, view: bool) -> set[str]:
    names = {f"layer{layer}_mean" for layer in range(layers)} | {f"layer{layers - 1}_head{h}" for h in range(heads)}
    names |= {"rollout", "view"} if view else {"rollout"}
    return {f"example{i}_{name}.png" for i in range(examples) for name in names}


SMALL = {
    "vision": [],
    "text": ["data.source.generation.train=200", "data.source.generation.val=20", "data.source.generation.test=20"],
    "speech": ["data.source.generation.per_voice=1", "data.source.generation.variants=[m1,m3,f1]"],
}


@pytest.mark.parametrize("modality", sorted(SMALL))
def test_callback_writes_heatmaps_rollout_and_the_modality_view(modality, make_config, tmp_path):
    cfg = make_config(
        f"modality={modality}",
        *FAST,
        *SMALL[modality],
        "attention_maps=true",
        "callbacks.attention_maps.examples=2",
        "callbacks.attention_maps.max_heads=1",
        "backbone.depth=2",
    )
    train(cfg)
    folder = tmp_path / "run" / "attention"
    want = expected_files(examples=2, layers=2, heads=1, view=True)
    for stage in ("epoch_000", "test"):
        assert {p.name for p in (folder / stage).iterdir()} == want | {"captions.json"}
        assert all(p.stat().st_size > 1000 for p in (folder / stage).glob("*.png"))
    if modality == "vision":  # W&B (offline) got the images too
        media = list((tmp_path / "run" / "wandb").glob("offline-run-*/files/media/images/attention/**/*.png"))
        assert len(media) >= len(want)


def test_a_backbone_without_attention_logs_one_warning_and_draws_nothing(make_config, tmp_path, caplog):
    depth0 = ["backbone.depth=0", "backbone.cls_token=false", "head.pooling=mean"]
    cfg = make_config(*FAST, *depth0, "~logger", "test=false", "attention_maps=true")
    with caplog.at_level(logging.WARNING, logger="attnlab.callbacks.attention_maps"):
        train(cfg)
    warnings = [r for r in caplog.records if "returns no attention" in r.getMessage()]
    assert len(warnings) == 1
    assert not list((tmp_path / "run").glob("attention/**/*.png"))
