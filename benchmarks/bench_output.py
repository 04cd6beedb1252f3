"""What every benchmark does with its results once measured: written as JSON where asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console


def write_json(path: Path | None, results: Any, console: Console | None = None) -> None:
    """Writes ``results`` to ``path`` as indented JSON (its folder made), and says so; nothing when ``path`` is None.

    ``make bench`` passes ``--json outputs/bench-<name>.json`` to each benchmark.
    """
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    (console or Console()).print(f"wrote {path}")
