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


def same_batches(a: list[Batch], b: list[Batch]) -> bool:
    """The two lists hold the same batches: the same keys, and every tensor equal."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
    )


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


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Flags that work on these machines (Playwright adds ``--headless`` and a fresh ``--user-data-dir``)."""


def chromium() -> str:
    """Debian's Chromium (`make install` installs it where it can); skips the test where it is missing."""
    import shutil

    import pytest

    pytest.importorskip("playwright.sync_api", reason="the browser tests drive Chromium with playwright (pip: dev)")
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("no Chromium: `apt-get install chromium` (Debian) needs root and the package archive")
    return found


def open_in_browser(page_path: Path, script: str, screenshot: Path | None = None) -> dict[str, Any]:
    """Loads ``page_path`` in headless Chromium (through the DevTools protocol) and returns what it showed.

    Returns:
        ``errors`` (console errors and uncaught exceptions), ``requests`` (every URL the page
        asked for but itself and inline ``data:`` images) and ``result``: the value of the
        JavaScript function ``script`` evaluated once every plotly figure has been drawn.
    """
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.js-plotly-plot')].every(d => d._fullLayout)", timeout=30000
            )
            result = page.evaluate(script)
            if screenshot is not None:
                page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    own = page_path.resolve().as_uri()
    return {
        "errors": errors,
        "requests": [u for u in requests if u != own and not u.startswith("data:")],
        "result": result,
    }


def fake_job(
    folder: Path,
    overrides: list[str],
    status: str,
    metrics: dict[str, float] | None = None,
    epochs: list[dict[str, float]] = (),
    error: str | None = None,
    objective: dict[str, str] | None = None,
    optimized_metric: str = "val/acc",
    params: int = 1000,
    attention_bytes: int = 2**20,
    throughput: list[float] = (100.0,),
    confusion: tuple[list[str], list[list[int]]] | None = None,
    maps: int = 0,
) -> Path:
    """A job folder as a run leaves it (job.json, config, metrics, history, confusion matrix, maps), untrained."""
    import json

    import yaml

    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / "config.yaml").write_text(yaml.safe_dump({"optimized_metric": optimized_metric, "seed": 1}))
    record = {"status": status, "overrides": overrides, "started": "2026-01-01T10:00:00+00:00"}
    if status != "running":
        record["finished"] = "2026-01-01T10:01:30+00:00"
    if error is not None:
        record["error"] = error
    if objective is not None:
        record["objective"] = objective
    (folder / "job.json").write_text(json.dumps(record))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    history = folder / "history"
    history.mkdir()
    (history / "epochs.jsonl").write_text("".join(json.dumps({"epoch": i, **e}) + "\n" for i, e in enumerate(epochs)))
    logged = [{"step": i, "train/device/samples_per_sec": v, "epoch": 0} for i, v in enumerate(throughput)]
    (history / "logged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logged))
    stats = {"model/params": params, "model/attention_peak_bytes": attention_bytes}
    (history / "hparams.json").write_text(json.dumps(stats))
    if confusion is not None:
        names, counts = confusion
        rows = ["true \\ predicted," + ",".join(names)] + [",".join([n, *map(str, r)]) for n, r in zip(names, counts)]
        (folder / "confusion_matrix.csv").write_text("\n".join(rows) + "\n")
    if maps:
        import numpy as np
        from matplotlib.image import imsave

        (folder / "attention" / "test").mkdir(parents=True)
        for i in range(maps):
            imsave(folder / "attention" / "test" / f"example{i}_rollout.png", np.random.default_rng(i).random((8, 8)))
        captions = {f"example{i}": f"example {i}: true a, predicted b" for i in range(maps)}
        (folder / "attention" / "test" / "captions.json").write_text(json.dumps(captions))
    return folder


def overlay_environment(root: Path) -> Path:
    """A throwaway virtual environment at ``root`` on top of this one; returns its ``bin`` folder.

    Everything installed here (attnlab included, editable or not) is importable there, and
    this environment's console scripts (``pip``, ``attnlab``, ...) are there too, run by its
    Python; what ``pip`` installs there stays there. A test that installs a package does it
    there, so tests running at the same time never see it.
    """
    import site
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    (packages,) = (root / "lib").glob("python3*/site-packages")
    # addsitedir, not sys.path: this environment's .pth files (an editable attnlab) must be read too.
    (packages / "zz_attnlab_test_overlay.pth").write_text(
        f"import site; list(map(site.addsitedir, {site.getsitepackages()!r}))\n"
    )
    here, bin_dir = Path(sys.executable).parent, root / "bin"
    python = bin_dir / "python"
    for script in here.iterdir():
        if (bin_dir / script.name).exists() or not script.is_file():
            continue
        with script.open("rb") as f:
            first = f.readline()
        if first.startswith(b"#!") and b"python" in first:  # a console script of this environment
            text = script.read_text()
            (bin_dir / script.name).write_text(f"#!{python}\n" + text.split("\n", 1)[1])
            (bin_dir / script.name).chmod(0o755)
    return bin_dir
