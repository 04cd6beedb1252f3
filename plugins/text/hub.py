"""A Hugging Face dataset as a text source (needs the ``hf`` extra: ``pip install 'attnlab[hf]'``).

``load_dataset`` can wait a long time on an unreachable Hub. Here the Hub is probed first
with a short timeout; when it is unreachable (or ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``
is set) the dataset is loaded in offline mode from the local cache, and a dataset that is
not cached fails at once with a message that says so.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from attnlab.data import BadItems
from attnlab.errors import ConfigError, DataError
from attnlab_text.sources import Fraction, RawSplits, TextSource, TextSplit, carve, token_split

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE = {"1", "ON", "YES", "TRUE"}


def import_datasets() -> ModuleType:
    """The ``datasets`` package, or a one-line error telling how to install it."""
    try:
        import datasets
    except ImportError as exc:
        raise ConfigError(
            "data=hf needs the Hugging Face `datasets` package; install it with "
            "`pip install 'attnlab[hf]'` (or `pip install datasets`)"
        ) from exc
    return datasets


def hub_reachable(timeout: float) -> tuple[bool, str]:
    """Whether a TCP connection to the Hub opens within ``timeout`` seconds, and the endpoint."""
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)
    if any(os.environ.get(k, "").upper() in TRUE for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return False, endpoint
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout):
            return True, endpoint
    except OSError:
        return False, endpoint


@contextmanager
def offline_mode(datasets: ModuleType, offline: bool) -> Iterator[None]:
    """Within the block, ``datasets`` and ``huggingface_hub`` make no network requests when ``offline``."""
    import huggingface_hub.constants as hub_constants

    modules = [datasets.config, hub_constants]
    before = [getattr(m, "HF_HUB_OFFLINE", False) for m in modules]
    try:
        if offline:
            for m in modules:
                m.HF_HUB_OFFLINE = True
        yield
    finally:
        for m, value in zip(modules, before):
            m.HF_HUB_OFFLINE = value


@dataclass(frozen=True)
class HFDataset(TextSource):
    """A dataset from the Hugging Face Hub (or a local folder of data files), by name and config.

    A text column of strings gives one label per text; a text column of word lists (e.g.
    ``tokens`` of conll2003) gives one label per word. Class-label features keep their names.

    Args:
        tokenizer, max_length: as for every :class:`TextSource`.
        name: the dataset's Hub id (``imdb``, ``conll2003``) or a local folder.
        config: the dataset's configuration (subset), if it has several.
        text_column, label_column: column names.
        train_split, val_split, test_split: split names; a missing val/test split is cut from train.
        cache_dir: the ``datasets`` cache (default: its own, ``~/.cache/huggingface``).
        timeout: seconds to wait for the Hub before working offline from the cache.
        val_fraction, test_fraction: shares of the training split for missing splits.
        split_seed: fixes those splits.
    """

    name: str | None = None
    config: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    train_split: str = "train"
    val_split: str | None = "validation"
    test_split: str | None = "test"
    cache_dir: str | None = None
    timeout: float = 5.0
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    split_seed: int = 0

    def read(self, bad: BadItems) -> RawSplits:
        if not self.name:
            raise ConfigError("data.source.name is not set; give a Hugging Face dataset id, e.g. imdb")
        datasets = import_datasets()
        local = Path(self.name).expanduser().exists()
        online, endpoint = (True, "") if local else hub_reachable(self.timeout)
        if not online:
            log.warning(
                "the Hugging Face Hub (%s) is unreachable: loading %s from the local cache", endpoint, self.name
            )
        with offline_mode(datasets, offline=not online):
            try:
                found = datasets.load_dataset(self.name, self.config, cache_dir=self.cache_dir)
            except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError...
                raise DataError(self._failure(exc, online, endpoint)) from exc
        return self._splits(found)

    def _failure(self, exc: Exception, online: bool, endpoint: str) -> str:
        what = f"Hugging Face dataset {self.name!r}" + (f" (config {self.config!r})" if self.config else "")
        if online:
            return f"cannot load {what}: {type(exc).__name__}: {exc}"
        cache = self.cache_dir or "the default cache ~/.cache/huggingface"
        return (
            f"{what} is not in {cache} and the Hub ({endpoint}) cannot be reached; "
            "connect to the network once to download it, or set data.source.cache_dir to a cache that holds it"
        )

    def _splits(self, found: Any) -> RawSplits:
        available = list(found.keys())
        if self.train_split not in available:
            raise DataError(
                f"{self.name} has no split {self.train_split!r}; splits: {', '.join(available)} "
                "(set data.source.train_split)"
            )
        parts: dict[str, TextSplit | None] = {}
        for key, split in (("train", self.train_split), ("val", self.val_split), ("test", self.test_split)):
            if split is not None and split not in available:
                log.info("%s has no split %r: cutting it from %s", self.name, split, self.train_split)
                split = None
            parts[key] = None if split is None else self._read(found[split], f"{self.name}[{split}]")
        stratify = parts["train"] is not None and parts["train"].words is None
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        raw = carve(parts, fractions, self.split_seed, stratify=stratify)
        raw.labels = _label_names(found[self.train_split].features[self.label_column])
        return raw

    def _read(self, table: Any, origin: str) -> TextSplit:
        for column in (self.text_column, self.label_column):
            if column not in table.column_names:
                raise DataError(
                    f"{origin}: no column {column!r}; columns found: {', '.join(table.column_names)} "
                    "(set data.source.text_column / data.source.label_column)"
                )
        names = _label_names(table.features[self.label_column])
        texts, labels = table[self.text_column], table[self.label_column]
        if texts and isinstance(texts[0], list):
            words = [[str(w) for w in ws] for ws in texts]
            return token_split(words, [[_name(v, names) for v in vs] for vs in labels], origin)
        return TextSplit(["" if t is None else str(t) for t in texts], [_name(v, names) for v in labels], origin=origin)


def _label_names(feature: Any) -> list[str] | None:
    """Names of a ClassLabel feature, or of the ClassLabel inside a sequence feature."""
    names = getattr(feature, "names", None)
    if names is None and getattr(feature, "feature", None) is not None:
        names = getattr(feature.feature, "names", None)
    return list(names) if names else None


def _name(value: Any, names: list[str] | None) -> str:
    if names is not None and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value)
