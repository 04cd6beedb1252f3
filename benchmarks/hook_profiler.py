"""A Lightning profiler that counts CPU seconds, not wall seconds, per hook and per callback.

``loop_overhead.py --hooks`` runs ``attnlab`` once with
``trainer.profiler={_target_:hook_profiler.CPUTimeProfiler,path:FILE}`` (this folder on
``PYTHONPATH``). Lightning names every hook call it profiles (``[Callback]<state key>.<hook>``,
``[LightningModule]...``, ``run_training_batch``, ...); this profiler adds up the process's
CPU time (``time.process_time``: every thread of the process) inside each and writes the
totals as JSON after every stage, so a callback's cost can be read on a busy machine,
where wall-clock profiles mostly measure the neighbours.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pytorch_lightning.profilers import Profiler


class CPUTimeProfiler(Profiler):
    """Adds up CPU seconds and calls per action; ``path`` gets ``{action: [seconds, calls]}``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.started: dict[str, float] = {}
        self.totals: dict[str, list[float]] = {}

    def start(self, action_name: str) -> None:
        self.started[action_name] = time.process_time()

    def stop(self, action_name: str) -> None:
        start = self.started.pop(action_name, None)
        if start is None:
            return
        total = self.totals.setdefault(action_name, [0.0, 0])
        total[0] += time.process_time() - start
        total[1] += 1

    def summary(self) -> str:
        return ""

    def describe(self) -> None:
        self.path.write_text(json.dumps(self.totals, indent=1) + "\n")


def by_callback(totals: dict[str, list[float]]) -> dict[str, float]:
    """CPU seconds per callback class: ``[Callback]ModelCheckpoint{...}.on_train_epoch_end`` → ``ModelCheckpoint``."""
    out: dict[str, float] = {}
    for action, (seconds, _) in totals.items():
        if not action.startswith("[Callback]"):
            continue
        name = action.removeprefix("[Callback]").split("{")[0].rsplit(".", 1)[0]
        out[name] = out.get(name, 0.0) + seconds
    return dict(sorted(out.items(), key=lambda item: -item[1]))
