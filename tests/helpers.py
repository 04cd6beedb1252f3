"""Test-only modules, importable from configs as ``helpers.<name>``."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from attnlab.types import Batch, Tokens
from attnlab_vision import PatchEmbed


class PoisonedPatchEmbed(PatchEmbed):
    """A patch embedding whose tokens turn NaN after ``poison_after`` training batches."""

    def __init__(self, *args, poison_after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.poison_after = poison_after
        self.calls = 0

    def forward(self, batch: Batch) -> Tokens:
        tokens = super().forward(batch)
        if self.training:
            self.calls += 1
            if self.calls > self.poison_after:
                tokens.x = tokens.x * torch.nan
        return tokens


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of an offline W&B run file (``run-*.wandb``), read independently of wandb's SDK.

    The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks, each
    ``crc32 (4) | length (2, little-endian) | type (1)`` then data; types FULL=1, FIRST=2,
    MIDDLE=3, LAST=4; a block's tail shorter than a chunk header is padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


class FloatMaskPatchEmbed(PatchEmbed):
    """A patch embedding that breaks the contract: its pad mask is float, not bool."""

    def forward(self, batch: Batch) -> Tokens:
        tokens = super().forward(batch)
        return Tokens(tokens.x, tokens.pad_mask.float(), tokens.positions)


class StopAtEpoch(pl.Callback):
    """Lets a test stop a run at the start of an epoch, after the previous epoch's checkpoints are written.

    Configured the same way in every run of a test (so their overrides match), it acts
    only where the environment asks; it draws no random numbers either way.

    - ``ATTNLAB_TEST_PAUSE=<epoch>:<marker file>``: touch the marker and wait, until
      SIGTERM or for 10 minutes (for a kill or a signal from the test);
    - ``ATTNLAB_TEST_INTERRUPT=<epoch>``: raise ``KeyboardInterrupt``, as Ctrl-C would.
    """

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch, _, marker = os.environ.get("ATTNLAB_TEST_PAUSE", "").partition(":")
        if epoch and trainer.current_epoch == int(epoch):
            Path(marker).touch()
            deadline = time.monotonic() + 600
            while not trainer.received_sigterm and time.monotonic() < deadline:
                time.sleep(0.05)
        if os.environ.get("ATTNLAB_TEST_INTERRUPT") == str(trainer.current_epoch):
            raise KeyboardInterrupt
