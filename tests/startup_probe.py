"""Run one console script in this process and report which heavy libraries it imported, and how.

``python tests/startup_probe.py attnlab-plugins list`` prints one JSON object: the exit
code, stdout, stderr, and for each heavy library the first import of, the chain of
attnlab's own modules (core and plugins, outermost first) on the stack at that moment.
``tests/test_startup.py`` runs it; run it by hand to see what a command pulls in.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from importlib.machinery import ModuleSpec
from importlib.metadata import entry_points

HEAVY = frozenset(
    {
        "lightning",
        "lightning_fabric",
        "matplotlib",
        "optuna",
        "pandas",
        "pytorch_lightning",
        "scipy",
        "sklearn",
        "tokenizers",
        "torch",
        "torchaudio",
        "torchmetrics",
        "torchvision",
        "wandb",
    }
)
"""Libraries that take a noticeable part of a second (or many seconds) to import."""

PLUGIN_PACKAGES = frozenset(ep.module.partition(".")[0] for ep in entry_points(group="attnlab.plugins"))


def _ours(module: str) -> bool:
    top = module.partition(".")[0]
    return top == "attnlab" or top in PLUGIN_PACKAGES or module.startswith("hydra_plugins.attnlab")


class ImportWatch:
    """A meta-path finder that finds nothing and notes who first imports each heavy library."""

    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {}

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        top = name.partition(".")[0]
        if top in HEAVY and top not in self.chains:
            chain: list[str] = []
            frame = sys._getframe(1)
            while frame is not None:
                module = frame.f_globals.get("__name__", "")
                if _ours(module) and (not chain or chain[-1] != module):
                    chain.append(module)
                frame = frame.f_back
            self.chains[top] = chain[::-1]
        return None


def main(script: str, args: list[str]) -> None:
    watch = ImportWatch()
    sys.meta_path.insert(0, watch)
    (entry,) = entry_points(group="console_scripts", name=script)
    sys.argv = [script, *args]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry.load()()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    record = {"exit": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "imports": watch.chains}
    print(json.dumps({**record, "plugin_packages": sorted(PLUGIN_PACKAGES)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
