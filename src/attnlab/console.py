"""What a run shows in the terminal: the config tree at start, the results at the end."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

_console = Console(stderr=False, soft_wrap=True)

_ORDER = ("data", "frontend", "backbone", "head", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths")


def _add(tree: Tree, node: Any) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if isinstance(value, Mapping) and value:
                _add(tree.add(f"[bold]{key}[/]"), value)
            else:
                tree.add(f"{key}: [cyan]{value!r}[/]" if isinstance(value, str) else f"{key}: [cyan]{value}[/]")
    else:
        tree.add(repr(node))


def print_config_tree(config: Mapping[str, Any]) -> None:
    """The composed config as a tree, the model's parts first."""
    tree = Tree("[bold]config[/]")
    keys = [k for k in _ORDER if k in config] + [k for k in config if k not in _ORDER]
    for key in keys:
        value = config[key]
        if isinstance(value, Mapping):
            _add(tree.add(f"[bold]{key}[/]"), value)
        else:
            tree.add(f"{key}: [cyan]{value}[/]")
    _console.print(tree)


def print_results(title: str, metrics: Mapping[str, float], run_dir: Path) -> None:
    """The final metrics as a table, then the run folder."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        table.add_row(key, f"{metrics[key]:.4f}")
    _console.print(table)
    _console.print(f"run folder: {run_dir}")
