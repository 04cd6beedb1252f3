"""Shared fixtures: composing configs the way the `attnlab` CLI does, without a subprocess.

`make test` runs the suite in parallel (pytest-xdist, one worker per core): each worker
then uses one intra-op thread, and so do the processes its tests start, so that the
workers share the cores instead of fighting over them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from attnlab import config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# Tests never talk to W&B servers and never read the user's credentials.
os.environ.pop("WANDB_API_KEY", None)
os.environ["WANDB_SILENT"] = "true"
os.environ.setdefault("NETRC", str(ROOT / "tests" / "no-netrc"))
# Generated datasets go to a fresh folder per test run, never to the user's cache; the workers
# of one parallel run share it (a dataset is built in a temporary folder and renamed into place).
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if RUN_ID:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["ATTNLAB_DATA"] = str(Path(tempfile.gettempdir()) / f"attnlab-test-data-{RUN_ID}")
    os.makedirs(os.environ["ATTNLAB_DATA"], exist_ok=True)
else:
    os.environ["ATTNLAB_DATA"] = tempfile.mkdtemp(prefix="attnlab-test-data-")

config.register_search_path()
config.register_resolvers()

# A short real run: every test that trains uses these on top of its own overrides.
FAST = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.enable_progress_bar=false",
    "data.batch_size=16",
    "backbone.dim=32",
    "backbone.heads=2",
    "backbone.depth=1",
]


def compose_config(overrides: Sequence[str] = (), name: str = "train", output_dir: Path | None = None) -> DictConfig:
    """The config `attnlab <overrides>` would run, with its run folder at ``output_dir``."""
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides))
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str, name: str = "train") -> DictConfig:
        return compose_config(overrides, name=name, output_dir=tmp_path / "run")

    return make


@pytest.fixture(autouse=True)
def _threads_kept():
    """A run in this process sets torch's threads for its job; the next test gets the worker's own back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_hydra_config_left():
    """Each test starts as a fresh process would: no job config left by an earlier test's in-process run."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None


@pytest.fixture(autouse=True)
def _logging_kept():
    """An in-process Hydra run configures logging (handlers on this test's captured streams); the
    next test gets the logging set-up it started with, not handlers writing to a closed stream."""
    import logging

    known = [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    before = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in [logging.getLogger(), *known]]
    yield
    for lg, handlers, level, propagate in before:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture(autouse=True)
def _no_wandb_mode_leak():
    before = os.environ.get("WANDB_MODE")
    yield
    assert os.environ.get("WANDB_MODE") == before, "a run changed the process-wide WANDB_MODE"


# The two longest tests' modules (whole pip installs and the plugin guide): run first, so that
# parallel workers do not end with one of them alone. Only modules that leave no in-process
# state behind (a Hydra job config, logging handlers) may move: tests after them expect none.
LONGEST_FIRST = ("test_docs_plugins", "test_scaffold")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of :data:`LONGEST_FIRST` come first, in that order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
