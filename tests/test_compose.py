"""What the user chose wins: every group arrives as its file says, under every modality and preset.

The reference for a group's values is the group's file composed alone (``backbone/small``
as the primary config), never numbers copied from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from hydra.utils import get_class, get_method, instantiate
from omegaconf import OmegaConf

from attnlab import config, plugins
from attnlab.compose import NotApplied, check_typed_defaults_read, honour_choices
from attnlab.errors import ConfigError

MODALITIES = sorted(plugins.available())
PRESETS = ("modality", "experiment", "debug", "hparams_search", "launcher")
"""Groups that are presets (global) or configure Hydra, not a node of the run's config."""
VIEW = "callbacks.attention_maps.view"
"""What a modality contributes to another group's node: its attention-map view (by design)."""


@pytest.fixture(scope="module", autouse=True)
def hydra() -> Iterator[None]:
    """One Hydra context for the module: composing is then a fraction of a second."""
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        yield


def groups() -> list[str]:
    found = {p.name for root in [config.CONFIG_DIR, *plugins.config_dirs()] for p in root.iterdir() if p.is_dir()}
    return sorted(found - {*PRESETS, "hydra"})


def composed(overrides: Sequence[str]) -> tuple[Any, NotApplied | None]:
    """The job's config as the CLI runs it, and what of a preset was not applied."""
    cfg = compose(config_name="train", overrides=list(overrides))
    return honour_choices(cfg, "train", overrides)


def packages(overrides: Sequence[str]) -> dict[str, str]:
    """Where each group's file lands in the config (``explain``: ``callbacks.attention_maps``)."""
    listed = GlobalHydra.instance().config_loader().compute_defaults_list("train", list(overrides), RunMode.RUN)
    return {d.config_path.rpartition("/")[0]: d.package for d in listed.defaults if "/" in d.config_path}


_ALONE: dict[str, Any] = {}


def alone(group: str, option: str) -> Any:
    """The group's file composed on its own (its own defaults list followed), as plain data."""
    key = f"{group}/{option}"
    if key not in _ALONE:
        _ALONE[key] = OmegaConf.to_container(compose(config_name=key), resolve=False)
    return _ALONE[key]


def select(data: Any, path: str) -> Any:
    for part in path.split(".") if path else []:
        data = data[part]
    return data


def drop(node: Any, package: str, paths: Sequence[str]) -> Any:
    """``node`` (the content at ``package``) without the given absolute paths, where present."""
    for path in paths:
        if path.startswith(package + "."):
            parent, _, key = path[len(package) + 1 :].rpartition(".")
            with suppress(KeyError):  # inside a node dropped before
                select(node, parent).pop(key, None)
    return node


def own_values(cfg: Any, group: str, packages: dict[str, str]) -> Any:
    """The group's node in ``cfg``, minus nodes of other groups nested in it and the modality's view."""
    package = packages[group]
    node = OmegaConf.to_container(OmegaConf.select(cfg, package), resolve=False)
    nested = [p for g, p in packages.items() if g != group and p and p != package]
    return drop(node, package, [*nested, VIEW])


def expected(group: str, option: str, package: str) -> Any:
    return drop(select(alone(group, option), package), package, [VIEW])


def modality_groups(modality: str) -> dict[str, list[str]]:
    """Every group that composes under ``modality`` (tokenizer exists with text only), with its options."""
    choices = compose(config_name="train", overrides=[f"modality={modality}"], return_hydra_config=True)
    present = set(choices.hydra.runtime.choices)
    return {g: config.group_options(g) for g in groups() if g in present}


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_group_option_arrives_as_its_file_says_under_every_modality(modality):
    """Each composition names one option of every group at once, cycling through the options,
    so every option of every group is composed under the modality and checked."""
    options = modality_groups(modality)
    where = packages([f"modality={modality}"])
    seen: set[tuple[str, str]] = set()
    for i in range(max(len(o) for o in options.values())):
        named = {group: opts[i % len(opts)] for group, opts in options.items()}
        overrides = [f"modality={modality}", *(f"{g}={o}" for g, o in named.items())]
        cfg, not_applied = composed(overrides)
        assert not_applied is None
        for group, option in named.items():
            assert own_values(cfg, group, where) == expected(group, option, where[group]), (overrides, group)
        seen |= set(named.items())
    assert seen == {(g, o) for g, opts in options.items() for o in opts} and len(seen) >= 30


def experiments() -> list[str]:
    return config.group_options("experiment")


def accepts(node: dict[str, Any]) -> list[str]:
    """Keys of a ``_target_`` node (and of those inside it) that its target cannot take."""
    target = node["_target_"]
    try:
        fn = get_class(target)
        params = inspect.signature(fn.__init__).parameters
    except ValueError:
        params = inspect.signature(get_method(target)).parameters
    bad = [k for k in node if not k.startswith("_") and k not in params]
    for value in node.values():
        if isinstance(value, dict) and "_target_" in value:
            bad += accepts(value)
    return bad


NAMED = {"optimizer": "adamw", "trainer": "default", "scheduler": "warmup_cosine", "head": "sequence"}
"""Groups named at their default option: what the user named must arrive as the file says."""


@pytest.mark.parametrize("backbone", ["lstm", "cycle"])
@pytest.mark.parametrize("experiment", experiments())
def test_a_group_named_with_an_experiment_wins_whole(experiment, backbone):
    """The named groups arrive as their files say after the preset, and the preset leaves no key
    a chosen group cannot take. Backbones: lstm with every preset, and the others in turn."""
    options = config.group_options("backbone")
    if backbone == "cycle":
        backbone = options[experiments().index(experiment) % len(options)]
    named = {"backbone": backbone, **NAMED}
    overrides = [f"experiment={experiment}", *(f"{g}={o}" for g, o in named.items())]
    cfg, not_applied = composed(overrides)
    where = packages(overrides)
    for group, option in named.items():
        assert own_values(cfg, group, where) == expected(group, option, where[group]), (overrides, group)
        assert accepts(OmegaConf.to_container(OmegaConf.select(cfg, where[group]), resolve=False)) == [], group
    if not_applied is not None:
        assert not_applied.preset == f"experiment={experiment}"
        assert set(not_applied.chosen) <= {f"{g}={o}" for g, o in named.items()}


def raw_experiment(name: str) -> dict[str, Any]:
    (path,) = [p for root in [config.CONFIG_DIR, *plugins.config_dirs()] for p in root.glob(f"experiment/{name}.yaml")]
    return yaml.safe_load(path.read_text())


def test_what_the_preset_did_not_apply_is_named():
    preset = raw_experiment("cnn_vs_vit_vit")
    cfg, not_applied = composed(["experiment=cnn_vs_vit_vit", "backbone=small"])
    assert cfg.backbone.depth == alone("backbone", "small")["backbone"]["depth"] != preset["backbone"]["depth"]
    assert cfg.trainer.max_epochs == preset["trainer"]["max_epochs"]  # trainer was not named: the preset applies
    assert not_applied.dropped == (f"backbone.depth={preset['backbone']['depth']}",)
    assert not_applied.message() == (
        "experiment=cnn_vs_vit_vit: you chose backbone=small, so the preset's "
        f"backbone.depth={preset['backbone']['depth']} was not applied"
    )

    # An option the preset selects is named too, when the user chose another.
    _, not_applied = composed(["experiment=cnn_vs_vit_cnn", "backbone=small"])
    assert not_applied.dropped == ("backbone=none",)


def test_typed_keys_and_later_presets_still_apply_over_a_named_group():
    window = raw_experiment("listops_window")["backbone"]["attention"]["window"]
    cfg, not_applied = composed(
        ["experiment=listops_window", "backbone=small", f"backbone.attention.window={window + 3}"]
    )
    assert cfg.backbone.attention.window == window + 3  # a key=value override always wins
    assert cfg.backbone.depth == alone("backbone", "small")["backbone"]["depth"]

    limit = yaml.safe_load((config.CONFIG_DIR / "debug" / "limit.yaml").read_text())
    cfg, not_applied = composed(["experiment=speech_ctc", "trainer=cpu", "debug=limit"])
    assert cfg.trainer.max_epochs == limit["trainer"]["max_epochs"]  # debug comes after the preset
    assert cfg.trainer.accelerator == alone("trainer", "cpu")["trainer"]["accelerator"]


def test_groups_that_configure_hydra_are_not_the_runs_nodes():
    _, not_applied = composed(["experiment=cnn_vs_vit_cnn", "launcher=joblib", "hparams_search=optuna"])
    assert not_applied is None


def test_a_modality_choice_drops_the_presets_front_end_keys():
    cfg, not_applied = composed(["experiment=vit_cifar10", "modality=cnn"])
    assert "patch_size" not in cfg.frontend
    assert not_applied.dropped == (f"frontend.patch_size={raw_experiment('vit_cifar10')['frontend']['patch_size']}",)


def test_a_typed_key_only_the_presets_settings_had_is_refused_in_one_line():
    # patch_size exists only through the preset; the chosen CNN front-end has no such key.
    with pytest.raises(ConfigError) as info:
        composed(["experiment=vit_cifar10", "modality=cnn", "frontend.patch_size=8"])
    message = str(info.value)
    assert message.startswith("experiment=vit_cifar10: you chose modality=cnn") and "frontend.patch_size" in message
    assert "\n" not in message


def modality_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((Path(plugins.get(name).config_dir) / "modality" / f"{name}.yaml").read_text())


def test_the_demo_defaults_hold_where_nothing_was_chosen():
    vision = compose_plain([])
    assert vision.backbone.cls_token is False  # mean pooling of the patch tokens
    assert OmegaConf.to_container(vision.augment, resolve=False) == alone("augment", "image")["augment"]
    assert "override /augment" in str(modality_file("vision")["defaults"])
    # the augmentation the user names wins over the modality's, whole
    assert OmegaConf.to_container(compose_plain(["augment=none"]).augment) == alone("augment", "none")["augment"]
    cnn = compose_plain(["modality=cnn"])
    assert OmegaConf.to_container(cnn.backbone, resolve=False) == alone("backbone", "none")["backbone"]
    assert instantiate(cnn.backbone).depth == 0
    speech = compose_plain(["modality=speech"])
    assert speech.backbone.attention.window == modality_file("speech")["attention_defaults"]["window"]
    assert (
        compose_plain(["modality=speech", "backbone=small"]).backbone.attention.window
        == speech.backbone.attention.window
    )
    assert compose_plain(["modality=speech", "backbone.attention.window=null"]).backbone.attention.window is None


def compose_plain(overrides: Sequence[str]) -> Any:
    cfg, not_applied = composed(overrides)
    assert not_applied is None
    return cfg


def test_text_with_sgd_trains_at_sgds_learning_rate():
    import torch

    cfg = compose_plain(["modality=text", "optimizer=sgd"])
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == yaml.safe_load((config.CONFIG_DIR / "optimizer" / "sgd.yaml").read_text())["lr"]


def test_a_typed_attention_default_that_nothing_reads_is_refused():
    overrides = ["modality=speech", "backbone=lstm", "attention_defaults.window=8"]
    with pytest.raises(ConfigError, match=r"attention_defaults.window=8 is read by nothing in this run"):
        check_typed_defaults_read(compose_plain(overrides), overrides)
    overrides = ["modality=speech", "backbone=small", "attention_defaults.window=8"]
    cfg = compose_plain(overrides)
    check_typed_defaults_read(cfg, overrides)
    assert cfg.backbone.attention.window == 8
