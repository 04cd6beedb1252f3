"""The plugin contract, checked on a real batch of a plugin's default data.

The project's contract test runs these over every discovered plugin, so a new plugin is
tested with no new test. Each failure names the plugin, the check and what was expected.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from attnlab import config, plugins
from attnlab.build import build_datamodule, build_model
from attnlab.errors import AttnlabError
from attnlab.types import Tokens

SMALL = ("backbone.dim=32", "backbone.heads=2", "backbone.depth=1", "data.batch_size=4")
"""Overrides that keep the checks fast on a CPU."""


class ContractError(AttnlabError):
    """A plugin breaks the contract."""

    def __init__(self, plugin: str, check: str, detail: str) -> None:
        super().__init__(f"plugin {plugin!r} failed check {check!r}: {detail}")
        self.plugin, self.check = plugin, check


def compose_for(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The training config of ``modality=<name>`` with ``overrides``, its run folder a temporary one."""
    config.register_search_path()
    config.register_resolvers()
    with initialize_config_dir(config_dir=str(config.config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"modality={name}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp(prefix=f"attnlab-check-{name}-")
    return cfg


def check_tokens(name: str, tokens: object, dim: int, batch_size: int) -> Tokens:
    """``tokens`` is a ``Tokens`` of width ``dim`` for ``batch_size`` examples."""
    if not isinstance(tokens, Tokens):
        raise ContractError(name, "tokens", f"the front-end must return attnlab.Tokens, got {type(tokens).__name__}")
    try:
        tokens.check()
    except ValueError as exc:
        raise ContractError(name, "tokens", str(exc)) from None
    if tokens.x.shape[0] != batch_size or tokens.x.shape[2] != dim:
        raise ContractError(
            name, "tokens", f"expected x of shape ({batch_size}, T, {dim}), got {tuple(tokens.x.shape)}"
        )
    return tokens


def run_checks(name: str, overrides: Sequence[str] = SMALL) -> None:
    """Compose, instantiate, produce tokens and back-propagate to the front-end."""
    plugin = plugins.get(name)
    try:
        cfg = compose_for(name, overrides)
    except Exception as exc:
        raise ContractError(name, "configs compose", f"{type(exc).__name__}: {exc}") from exc
    try:
        datamodule, info = build_datamodule(cfg, "fit")
        with config.data_info(info):
            model = build_model(cfg)
    except Exception as exc:
        raise ContractError(name, "objects instantiate", f"{type(exc).__name__}: {exc}") from exc
    if plugin.frontends and not isinstance(model.frontend, plugin.frontends):
        raise ContractError(name, "front-end", f"expected one of {plugin.frontends}, got {type(model.frontend)}")

    batch = next(iter(datamodule.train_dataloader()))
    model.train()
    tokens = check_tokens(name, model.frontend(batch), model.backbone.dim, len(batch["target"]))
    encoded = model.backbone(tokens)
    loss = model.head.loss(model.head(encoded), encoded.pad_mask, batch)
    if not torch.isfinite(loss):
        raise ContractError(name, "loss", f"expected a finite loss on the first batch, got {float(loss)}")
    loss.backward()
    params = [p for p in model.frontend.parameters() if p.requires_grad]
    if params and not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params):
        raise ContractError(name, "backward", "no gradient reached the front-end's parameters")
