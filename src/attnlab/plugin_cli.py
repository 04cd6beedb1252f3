"""``attnlab-plugins``: list, scaffold and check modality plugins.

- ``attnlab-plugins [list]``: every discovered plugin, working or broken, with its source.
- ``attnlab-plugins new NAME --kind sequence|set|grid [--dir PATH]``: write a new plugin package
  whose tokens are of that kind (:mod:`attnlab.scaffold`); without ``--kind`` it asks.
- ``attnlab-plugins check [NAME ...]``: the contract checks (:mod:`attnlab.contract`) on the
  named plugins, or on all of them.

Bad input ends in one line on stderr and exit code 2; a plugin failing its checks
gives exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from attnlab import plugins
from attnlab.errors import AttnlabError

PROG = "attnlab-plugins"
EXIT_CHECK_FAILED = 1
EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def list_plugins() -> int:
    """Print the table of discovered plugins: name, status, description or error, source."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="attnlab modality plugins")
    for column in ("name", "status", "description", "source"):
        table.add_column(column)
    for name, record in sorted(plugins.discover().items()):
        if record.plugin is not None:
            table.add_row(name, "[green]ok[/]", record.plugin.description, record.source)
        else:
            table.add_row(name, "[red]broken[/]", record.error or "", record.source)
    Console(soft_wrap=True).print(table)
    return 0


KIND_QUESTION = """What kind of tokens does the modality make?
  sequence  ordered and of varying length (a time series, a signal)
  set       unordered elements (a table's columns, an object's parts)
  grid      a fixed 2-D grid (an image, a map, a board)
kind: """


def ask_kind() -> str:
    """The kind of tokens, asked on the terminal; without one, a one-line error saying how to give it."""
    from attnlab import scaffold

    if not sys.stdin.isatty():
        fail(f"choose what kind of tokens the modality makes: --kind {'|'.join(scaffold.KINDS)}")
    kind = input(KIND_QUESTION).strip()
    scaffold.check_kind(kind)
    return kind


def new_plugin(name: str, target: Path | None, kind: str | None) -> int:
    """Write the package of a new plugin and say what to do next."""
    from attnlab import scaffold

    scaffold.check_name(name)
    written = scaffold.scaffold(name, target, kind or ask_kind())
    where = target if target is not None else scaffold.default_dir(name)
    print(f"wrote plugin {name!r} to {where}/ ({len(written)} files):")
    for path in written:
        print(f"  {path.relative_to(where)}")
    print("next:")
    print(f"  pip install -e {where}")
    print(f"  {PROG} check {name}")
    print(f"  attnlab modality={name}")
    return 0


def check_plugins(names: Sequence[str]) -> int:
    """Run the contract checks on ``names`` (all discovered plugins when empty)."""
    from attnlab import contract

    records = plugins.discover()
    unknown = [n for n in names if n not in records]
    if unknown:
        known = ", ".join(sorted(records)) or "none"
        fail(f"unknown plugin {', '.join(map(repr, unknown))}; installed plugins: {known}")
    failed = 0
    for name in names or sorted(records):
        start = time.perf_counter()
        try:
            contract.run_checks(name)
        except AttnlabError as exc:
            failed += 1
            print(f"FAIL {name}: {exc}", flush=True)
            continue
        seconds = time.perf_counter() - start
        print(f"ok   {name}: {len(contract.CHECKS)} checks passed ({seconds:.1f} s)", flush=True)
    return EXIT_CHECK_FAILED if failed else 0


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="List, create and check attnlab modality plugins.")
    sub = p.add_subparsers(dest="command", metavar="{list,new,check}", parser_class=_Parser)
    sub.add_parser("list", help="the discovered plugins, working or broken, with their source (the default)")
    new = sub.add_parser("new", help="write a new, working plugin package to start from")
    new.add_argument("name", help="the modality name: lowercase letters, digits and '_' (package attnlab_<name>)")
    new.add_argument(
        "--kind",
        choices=("sequence", "set", "grid"),
        help="what the tokens are: an ordered sequence, an unordered set, or a 2-D grid (asked when not given)",
    )
    new.add_argument("--dir", type=Path, default=None, help="where to write it (default: ./attnlab-<name>)")
    check = sub.add_parser("check", help="run the plugin contract checks")
    check.add_argument("names", nargs="*", metavar="name", help="plugins to check (default: all)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``attnlab-plugins`` with ``argv``; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        if args.command == "new":
            return new_plugin(args.name, args.dir, args.kind)
        if args.command == "check":
            return check_plugins(args.names)
        return list_plugins()
    except AttnlabError as exc:
        fail(str(exc))
