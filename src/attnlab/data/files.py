"""Finding files that cannot be decoded, at set-up, before any training time is spent.

Each file is first looked at without decoding (missing, a symlink loop, a folder, empty,
not readable); then the source's ``check_file`` decodes it fully. A full decode is the
only check that catches a truncated image or audio file, so its verdicts are remembered
in ``cache_dir`` by (path, size, modification time): a later run on the same files
decodes only what changed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)

THREADS = 4
"""Files decoded at once (decoders release the GIL)."""


def _stat_problem(path: Path) -> tuple[str | None, os.stat_result | None]:
    """Why ``path`` cannot be read without decoding it, or None, and its ``stat``."""
    try:
        st = path.stat()  # follows symlinks: a loop or a dangling link fails here
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop", None
        if exc.errno == errno.ENOENT:
            return ("a dangling symlink" if path.is_symlink() else "missing"), None
        return f"cannot stat: {exc.strerror or exc}", None
    if not path.is_file():
        return "not a regular file", st
    if st.st_size == 0:
        return "empty file (0 bytes)", st
    if not os.access(path, os.R_OK):
        return "permission denied", st
    return None, st


def _decode_problem(path: Path, check: Callable[[Path], None]) -> str | None:
    try:
        check(path)
    except Exception as exc:  # decoders raise OSError, ValueError, RuntimeError, their own types...
        message = " ".join(str(exc).split()) or type(exc).__name__
        return f"cannot be decoded: {type(exc).__name__}: {message}"[:300]
    return None


class _Cache:
    """Verdicts of earlier full decodes: ``{path: [size, mtime_ns, reason or None]}`` in one JSON file."""

    def __init__(self, folder: Path | None, files: Sequence[Path]) -> None:
        self.path: Path | None = None
        self.entries: dict[str, list] = {}
        if folder is None or not files:
            return
        key = hashlib.sha1("\n".join(sorted({str(f.parent.resolve()) for f in files})).encode()).hexdigest()[:16]
        self.path = folder / f"file-checks-{key}.json"
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def get(self, path: Path, st: os.stat_result) -> tuple[bool, str | None]:
        entry = self.entries.get(str(path.resolve()))
        if entry is not None and entry[:2] == [st.st_size, st.st_mtime_ns]:
            return True, entry[2]
        return False, None

    def put(self, path: Path, st: os.stat_result, reason: str | None) -> None:
        self.entries[str(path.resolve())] = [st.st_size, st.st_mtime_ns, reason]

    def save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries))
            tmp.replace(self.path)
        except OSError as exc:  # a read-only cache costs time, not correctness
            log.info("file checks not remembered (%s): %s", self.path, exc)


def scan(files: Sequence[Path], check: Callable[[Path], None], cache_dir: Path | None = None) -> dict[int, str]:
    """The files that cannot be read, by index: ``{i: reason}``; empty when all decode.

    Args:
        files: the files to look at.
        check: decodes one file, raising when it cannot (the source's ``check_file``).
        cache_dir: where verdicts are remembered between runs; None decodes every file.
    """
    bad: dict[int, str] = {}
    cache = _Cache(cache_dir, files)
    pending: list[tuple[int, Path, os.stat_result]] = []
    for i, path in enumerate(files):
        reason, st = _stat_problem(path)
        if reason is not None:
            bad[i] = reason
            continue
        assert st is not None
        known, verdict = cache.get(path, st)
        if known:
            if verdict is not None:
                bad[i] = verdict
        else:
            pending.append((i, path, st))
    if pending:
        log.info("decoding %d file(s) once to find unreadable ones (remembered in %s)", len(pending), cache_dir)
        with ThreadPoolExecutor(THREADS) as pool:
            verdicts = list(pool.map(lambda item: _decode_problem(item[1], check), pending))
        for (i, path, st), reason in zip(pending, verdicts):
            cache.put(path, st, reason)
            if reason is not None:
                bad[i] = reason
        cache.save()
    return bad
