"""The plugin contract, checked on a real batch of a plugin's default data.

The project's contract test and ``attnlab-plugins check`` run the same :func:`run_checks`,
so a new plugin is tested with no new test. The checks, in order (:data:`CHECKS`):

1. ``plugin loads``: the entry point imports and declares a valid ``Plugin``.
2. ``configs compose``: ``modality=<name>`` and every other file in the plugin's
   ``conf/`` compose with attnlab's configs.
3. ``data``: the data config is attnlab's ``DataModule`` with a source of a class the
   plugin declares; it sets up and gives a valid ``DataSpec`` (a task, distinct class
   names, plain ``${from_data:...}`` values).
4. ``batch``: the first training batch keeps the batch contract for the task (``inputs``,
   a long ``target`` of the task's shape with class ids in range, ``lengths``).
5. ``objects instantiate``: the model builds from the data's values, with the head of the
   data's task; the front-end is of a class the plugin declares.
6. ``tokens``: the front-end returns ``Tokens`` of shape ``(B, T, backbone.dim)``, float
   and finite.
7. ``pad mask``: bool ``(B, T)``, True for real tokens: every example has one, and a
   longer input never has fewer real tokens than a shorter one.
8. ``backward``: the loss is finite and its gradient reaches the front-end's parameters.
9. ``training run``: two batches through a real Lightning ``Trainer`` on the CPU.

Each failure is a :class:`ContractError` naming the plugin, the check and what was
expected.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from torch import Tensor

from attnlab import config, plugins
from attnlab.build import build_datamodule, build_model
from attnlab.data import DataModule
from attnlab.errors import AttnlabError
from attnlab.module import AttnlabModule
from attnlab.types import Batch, Tokens, check_batch

SMALL = ("backbone.dim=32", "backbone.heads=2", "backbone.depth=1", "data.batch_size=4")
"""Overrides that keep the checks fast on a CPU."""

CHECKS = (
    "plugin loads",
    "configs compose",
    "data",
    "batch",
    "objects instantiate",
    "tokens",
    "pad mask",
    "backward",
    "training run",
)
"""The checks :func:`run_checks` makes, in order."""

TRAIN_BATCHES = 2


class ContractError(AttnlabError):
    """A plugin breaks the contract."""

    def __init__(self, plugin: str, check: str, detail: str) -> None:
        super().__init__(f"plugin {plugin!r} failed check {check!r}: {detail}")
        self.plugin, self.check, self.detail = plugin, check, detail


def _describe(exc: BaseException) -> str:
    """``Type: message`` of the user's error behind ``exc`` (Hydra wraps them)."""
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    return f"{type(cause).__name__}: {cause}".strip()


def load_plugin(name: str) -> plugins.Plugin:
    """The plugin called ``name``; a broken one fails the ``plugin loads`` check.

    Raises:
        ConfigError: no plugin of that name is installed.
    """
    record = plugins.discover().get(name)
    if record is not None and record.plugin is None:
        raise ContractError(name, "plugin loads", f"{record.error} [{record.source}]")
    return plugins.get(name)


def compose_for(name: str, overrides: Sequence[str] = (), output_dir: Path | None = None) -> DictConfig:
    """The training config of ``modality=<name>`` with ``overrides``.

    Its run folder is ``output_dir``, or a fresh temporary folder.
    """
    config.register_search_path()
    config.register_resolvers()
    with initialize_config_dir(config_dir=str(config.config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"modality={name}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or tempfile.mkdtemp(prefix=f"attnlab-check-{name}-"))
    return cfg


def plugin_config_overrides(plugin: plugins.Plugin) -> list[str]:
    """``group=name`` for every config file of ``plugin`` outside ``modality/``."""
    root = Path(plugin.config_dir)
    found = []
    for path in sorted(root.rglob("*.yaml")):
        group = path.parent.relative_to(root).as_posix()
        if group not in (".", "modality"):
            found.append(f"{group}={path.stem}")
    return found


def check_configs(name: str, plugin: plugins.Plugin, overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """Compose ``modality=<name>``, then each of the plugin's other files on top of it."""
    try:
        cfg = compose_for(name, overrides, output_dir)
    except Exception as exc:
        raise ContractError(name, "configs compose", f"modality/{name}.yaml: {_describe(exc)}") from exc
    for choice in plugin_config_overrides(plugin):
        try:
            compose_for(name, [*overrides, choice], output_dir)
        except Exception as exc:
            file = choice.replace("=", "/") + ".yaml"
            raise ContractError(name, "configs compose", f"{file}: {_describe(exc)}") from exc
    return cfg


def check_data(name: str, plugin: plugins.Plugin, cfg: DictConfig) -> tuple[DataModule, dict]:
    """The datamodule, set up, and its ``data_info()``: attnlab's DataModule, a declared source, a valid spec."""
    check = "data"
    target = str(cfg.data.get("_target_", "")) if cfg.get("data") is not None else ""
    if target != "attnlab.data.DataModule":
        raise ContractError(
            name, check, f"expected data._target_ attnlab.data.DataModule with the dataset under source, got {target!r}"
        )
    try:
        datamodule, info = build_datamodule(cfg, "fit")
    except Exception as exc:
        raise ContractError(name, check, f"datamodule: {_describe(exc)}") from exc
    source = datamodule.source
    if not isinstance(source, plugin.sources or ()):
        declared = ", ".join(c.__name__ for c in plugin.sources) or "none"
        detail = f"expected data.source to be one of the plugin's sources ({declared}), got {type(source).__name__}"
        raise ContractError(name, check, detail)
    try:
        datamodule.spec.check()
    except ValueError as exc:
        raise ContractError(name, check, f"the data spec of {type(source).__name__}: {exc}") from None
    return datamodule, info


def check_first_batch(name: str, datamodule: DataModule) -> Batch:
    """The first training batch, checked against the task's batch contract."""
    try:
        batch = next(iter(datamodule.train_dataloader()))
    except Exception as exc:
        raise ContractError(name, "batch", f"first training batch: {_describe(exc)}") from exc
    if not isinstance(batch, dict):
        raise ContractError(
            name, "batch", f"expected a batch dict with 'inputs' and 'target', got {type(batch).__name__}"
        )
    try:
        check_batch(batch, datamodule.spec)
    except ValueError as exc:
        source = type(datamodule.source).__name__
        raise ContractError(name, "batch", f"{source} (task {datamodule.spec.task!r}): {exc}") from None
    return batch


def check_objects(name: str, plugin: plugins.Plugin, cfg: DictConfig, info: dict) -> AttnlabModule:
    """The model built from the data's ``data_info()``, its front-end of a declared class."""
    check = "objects instantiate"
    try:
        with config.data_info(info):
            model = build_model(cfg)
    except Exception as exc:
        raise ContractError(name, check, f"model (data_info() gave {sorted(info)}): {_describe(exc)}") from exc
    if plugin.frontends and not isinstance(model.frontend, plugin.frontends):
        expected = ", ".join(c.__name__ for c in plugin.frontends)
        detail = f"expected the front-end to be one of {expected}, got {type(model.frontend).__name__}"
        raise ContractError(name, check, detail)
    return model


def check_tokens(name: str, tokens: object, dim: int, batch_size: int) -> Tokens:
    """``tokens`` is a float, finite ``Tokens`` of width ``dim`` for ``batch_size`` examples."""
    if not isinstance(tokens, Tokens):
        raise ContractError(name, "tokens", f"the front-end must return attnlab.Tokens, got {type(tokens).__name__}")
    x = tokens.x
    if not isinstance(x, Tensor) or x.dim() != 3 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ContractError(name, "tokens", f"expected x to be a float tensor (B, T, D), got {got}")
    if x.shape[0] != batch_size or x.shape[2] != dim:
        raise ContractError(name, "tokens", f"expected x of shape ({batch_size}, T, {dim}), got {tuple(x.shape)}")
    check_pad_mask(name, tokens)
    try:
        tokens.check()  # positions
    except ValueError as exc:
        raise ContractError(name, "tokens", str(exc)) from None
    if not bool(torch.isfinite(x[tokens.pad_mask]).all()):
        raise ContractError(name, "tokens", "expected finite values in every real token, got NaN or inf")
    return tokens


def check_pad_mask(name: str, tokens: Tokens, lengths: Tensor | None = None) -> None:
    """The pad mask is bool ``(B, T)`` and True for real tokens.

    Every example needs a real token. With the batch's input ``lengths``, a longer input
    must not have fewer real tokens than a shorter one: an inverted mask (True for
    padding) fails that.
    """
    mask, shape = tokens.pad_mask, tuple(tokens.x.shape[:2])
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ContractError(name, "pad mask", f"expected pad_mask to be bool (True = real token), got {got}")
    if tuple(mask.shape) != shape:
        raise ContractError(name, "pad mask", f"expected pad_mask of shape (B, T) = {shape}, got {tuple(mask.shape)}")
    empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ContractError(
            name, "pad mask", f"expected at least one real token (True) per example, got none in examples {empty}"
        )
    if lengths is None or lengths.dim() != 1 or len(lengths) != len(mask):
        return
    real, lengths = mask.sum(dim=1).cpu(), lengths.cpu()  # (B,), (B,)
    bad = (lengths[:, None] < lengths[None, :]) & (real[:, None] > real[None, :])  # (B, B): i shorter, more real
    if bool(bad.any()):
        shorter, longer = (int(i) for i in bad.nonzero()[0])
        raise ContractError(
            name,
            "pad mask",
            f"expected no fewer real tokens (True) for a longer input: an input of length "
            f"{int(lengths[longer])} has {int(real[longer])}, one of length {int(lengths[shorter])} has "
            f"{int(real[shorter])}; pad_mask must be True for real tokens and False for padding",
        )


def check_backward(name: str, model: AttnlabModule, batch: Batch) -> None:
    """One forward and backward pass: the loss is finite and reaches the front-end."""
    model.train()
    try:
        output = model.frontend(batch)
    except Exception as exc:
        raise ContractError(name, "tokens", f"the front-end raised {_describe(exc)}") from exc
    tokens = check_tokens(name, output, model.backbone.dim, len(batch["target"]))
    lengths = batch.get("lengths")
    check_pad_mask(name, tokens, lengths if isinstance(lengths, Tensor) else None)
    try:
        encoded = model.backbone(tokens)
        loss = model.head.loss(model.head(encoded), encoded.pad_mask, batch)
    except Exception as exc:
        raise ContractError(name, "backward", f"backbone and head on the tokens: {_describe(exc)}") from exc
    if not torch.isfinite(loss):
        raise ContractError(name, "backward", f"expected a finite loss on the first batch, got {float(loss)}")
    loss.backward()
    params = [p for p in model.frontend.parameters() if p.requires_grad]
    if params and not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params):
        raise ContractError(
            name, "backward", "expected a gradient in the front-end's parameters, got none (is x detached?)"
        )
    model.zero_grad(set_to_none=True)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's start-up banners and data-loader hints are noise in a check."""
    logger = logging.getLogger("pytorch_lightning")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="pytorch_lightning")
            yield
    finally:
        logger.setLevel(level)


def check_training_run(name: str, model: AttnlabModule, datamodule: DataModule, root: Path) -> None:
    """Two training batches and one validation batch through a real ``Trainer`` on the CPU."""
    try:
        with _quiet_lightning():
            trainer = pl.Trainer(
                accelerator="cpu",
                devices=1,
                max_epochs=1,
                limit_train_batches=TRAIN_BATCHES,
                limit_val_batches=1,
                num_sanity_val_steps=0,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                default_root_dir=str(root),
            )
            trainer.fit(model, datamodule=datamodule)
    except Exception as exc:
        raise ContractError(name, "training run", _describe(exc)) from exc
    expected = min(TRAIN_BATCHES, trainer.num_training_batches)
    if trainer.global_step != expected:
        detail = f"expected {expected} optimizer steps, got {trainer.global_step}"
        raise ContractError(name, "training run", detail)
    loss = trainer.callback_metrics.get("train/loss")
    if loss is None or not math.isfinite(float(loss)):
        raise ContractError(name, "training run", f"expected a finite train/loss, got {loss}")


def run_checks(name: str, overrides: Sequence[str] = SMALL) -> None:
    """Run every check of :data:`CHECKS` on plugin ``name``; the first failure raises.

    Raises:
        ContractError: the plugin breaks the contract.
        ConfigError: no plugin called ``name`` is installed.
    """
    plugin = load_plugin(name)
    with tempfile.TemporaryDirectory(prefix=f"attnlab-check-{name}-") as tmp:
        cfg = check_configs(name, plugin, overrides, Path(tmp))
        datamodule, info = check_data(name, plugin, cfg)
        batch = check_first_batch(name, datamodule)
        model = check_objects(name, plugin, cfg, info)
        check_backward(name, model, batch)
        check_training_run(name, model, datamodule, Path(tmp))
