"""Input a run cannot use (undecodable files, malformed rows), reported once, before training.

Sources and the file scan report each bad item with :meth:`BadItems.add`; the DataModule
then calls :meth:`BadItems.settle` (a source may call :meth:`BadItems.stop_if_error` earlier,
before work that bad input would confuse, e.g. cutting splits): with ``data.bad_files=skip`` (the default) they are
left out with one warning line that counts them, and their paths and reasons are written
to ``bad_files.txt`` in the run folder; with ``data.bad_files=error`` the run stops with one
line naming the first few. Either way no training time is spent on them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from attnlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Policy = Literal["skip", "error"]
POLICIES = ("skip", "error")
FILE = "bad_files.txt"
NAMED = 3
"""Bad items an error message names before ``and N more``."""


class BadItems:
    """The bad items found while loading, in the order found.

    Args:
        policy: ``skip`` leaves them out, ``error`` stops the run.
        save_dir: the run folder, where ``bad_files.txt`` is written; None: not written.
    """

    def __init__(self, policy: Policy = "skip", save_dir: Path | None = None) -> None:
        if policy not in POLICIES:
            raise ConfigError(f"data.bad_files={policy!r} is unknown; choose skip or error")
        self.policy, self.save_dir = policy, save_dir
        self.items: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, where: str | Path, reason: str) -> None:
        """Record one bad item: a file path or ``path:line``, and why it cannot be used (one line)."""
        self.items.append((str(where), " ".join(str(reason).split())))

    def lines(self) -> list[str]:
        return [f"{where}\t{reason}" for where, reason in self.items]

    def write(self) -> Path | None:
        """``bad_files.txt`` in the run folder (path, tab, reason per line); None without a folder."""
        if self.save_dir is None or not self.items:
            return None
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = self.save_dir / FILE
        path.write_text("\n".join(self.lines()) + "\n")
        return path

    def describe(self, count: int = NAMED) -> str:
        shown = "; ".join(f"{where}: {reason}" for where, reason in self.items[:count])
        more = len(self.items) - count
        return shown + (f"; and {more} more" if more > 0 else "")

    def stop_if_error(self) -> None:
        """With ``policy`` ``error`` and something found: write ``bad_files.txt`` and stop.

        Raises:
            DataError: one line naming the first few bad items.
        """
        if self.policy != "error" or not self.items:
            return
        written = self.write()
        listed = f"; all listed in {written}" if written is not None else ""
        raise DataError(
            f"{len(self.items)} input(s) cannot be read (data.bad_files=error): {self.describe()}{listed}. "
            "Fix or remove them, or set data.bad_files=skip to train without them"
        )

    def settle(self) -> None:
        """Write ``bad_files.txt``, then stop with one line (``error``) or warn once (``skip``).

        Raises:
            DataError: ``policy`` is ``error`` and something was found.
        """
        self.stop_if_error()
        if not self.items:
            return
        written = self.write()
        listed = f"; all listed in {written}" if written is not None else f"; first: {self.describe(1)}"
        log.warning("left out %d input(s) that cannot be read (data.bad_files=skip)%s", len(self.items), listed)
