"""Offline, deterministic synthesis of spoken digits with the espeak-ng engine.

The engine is the ``libespeak-ng`` shared library and ``espeak-ng-data`` folder bundled by
the PyPI package ``espeakng-loader``; it is driven through :mod:`ctypes` (the C API of
``speak_lib.h``) in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode, with a callback collecting the
16-bit samples at 22050 Hz.

Determinism: libespeak-ng keeps a lot of synthesis state in static variables that survive
``espeak_Terminate``/``espeak_Initialize`` (e.g. the pitch-flutter phase ``Flutter_ix``, the
wave phase, the echo buffer), so the same text spoken twice in one process gives different
samples and even different lengths. Every :meth:`Synthesizer.synthesize` call therefore runs
on a freshly loaded library image (``dlopen``/``dlclose`` of a private in-memory copy, a few
milliseconds) and seeds espeak's noise generator (``espeak_ng_SetRandSeed``), which otherwise
is seeded from the clock. Same inputs then give byte-identical output in any order and in
any process.

Datasets are written by :func:`generate_digits` and :func:`generate_digit_strings` as
16-bit FLAC files plus a ``manifest.csv``; they are built in a temporary folder, renamed into
place when complete, and reused when a complete copy already exists.
"""

from __future__ import annotations

import _ctypes
import contextlib
import csv
import ctypes
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f4")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

SAMPLE_RATE = 22050
RATE_RANGE = (130, 210)  # words per minute, inclusive
PITCH_RANGE = (30, 70)  # espeak base pitch 0-100, inclusive
MANIFEST = "manifest.csv"
COLUMNS = ("path", "label", "text", "voice", "accent", "variant", "rate", "pitch")

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_RAND_SEED = 0
_TRIM_LEVEL = 64  # |sample| (16-bit) above which a sample counts as sound
_TRIM_PAD = SAMPLE_RATE // 100  # keep 10 ms of silence on both sides

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()  # libespeak-ng is process-global: one synthesis at a time
_IMAGE: tuple[str, bytes] | None = None  # (library path to dlopen, espeak-ng-data parent), set once


def _library_image() -> tuple[str, bytes]:
    """Locate the bundled library once per process and make a private copy of it to load.

    The copy lives in an anonymous in-memory file (``memfd``) so that our ``dlopen`` never
    shares a handle (and static state) with another user of the same library file in this
    process. Where ``memfd_create`` is unavailable, the original file is loaded.

    Returns:
        The path to pass to ``dlopen`` and the folder containing ``espeak-ng-data``.

    Raises:
        RuntimeError: If ``espeakng-loader`` is not installed.
    """
    global _IMAGE
    if _IMAGE is None:
        try:
            import espeakng_loader
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise RuntimeError("speech synthesis needs the 'espeakng-loader' package") from err
        lib_path = espeakng_loader.get_library_path()
        data_parent = os.fsencode(Path(espeakng_loader.get_data_path()).parent)
        if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
            fd = os.memfd_create("libespeak-ng-private", 0)  # kept open for the process' life
            os.write(fd, Path(lib_path).read_bytes())
            lib_path = f"/proc/self/fd/{fd}"
        _IMAGE = (lib_path, data_parent)
    return _IMAGE


def _declare(lib: ctypes.CDLL) -> None:
    """Declare the C signatures (from ``speak_lib.h``/``espeak_ng.h``) of the functions used.

    Args:
        lib: A freshly loaded libespeak-ng.
    """
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int


@contextlib.contextmanager
def _fresh_engine(callback: ctypes._CFuncPtr) -> Iterator[tuple[ctypes.CDLL, int]]:
    """Load, initialise and afterwards unload a private libespeak-ng with pristine state.

    Args:
        callback: The synth callback receiving the samples.

    Yields:
        The initialised library and its output sample rate.

    Raises:
        RuntimeError: If espeak-ng cannot be initialised.
    """
    lib_path, data_parent = _library_image()
    lib = ctypes.CDLL(lib_path, mode=os.RTLD_LOCAL)
    try:
        _declare(lib)
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate}) with data in {data_parent!r}")
        try:
            lib.espeak_SetSynthCallback(callback)
            lib.espeak_ng_SetRandSeed(_RAND_SEED)  # breath/noise generator, else seeded by the clock
            yield lib, rate
        finally:
            lib.espeak_Terminate()
    finally:
        handle = lib._handle
        del lib
        _ctypes.dlclose(handle)  # last reference: the next dlopen starts from zeroed statics


def _trim(samples: np.ndarray) -> np.ndarray:
    """Cut leading/trailing silence, keeping ``_TRIM_PAD`` samples of it on each side.

    Args:
        samples: 16-bit mono samples.

    Returns:
        The trimmed samples (unchanged if nothing rises above ``_TRIM_LEVEL``).
    """
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > _TRIM_LEVEL)
    if loud.size == 0:
        return samples
    start = max(int(loud[0]) - _TRIM_PAD, 0)
    stop = min(int(loud[-1]) + 1 + _TRIM_PAD, samples.size)
    return samples[start:stop]


class Synthesizer:
    """Deterministic text-to-speech with the bundled espeak-ng engine.

    The library file is located (and privately copied) once per process; each call then runs
    on a freshly loaded engine so that its output depends only on its arguments.

    Example:
        >>> audio = Synthesizer().synthesize("seven", "en-us+m3", rate_wpm=170, pitch=50)
    """

    def __init__(self) -> None:
        """Locate and check the engine, reading its output sample rate."""
        with _LOCK, _fresh_engine(_CALLBACK(lambda wav, n, events: 0)) as (_, rate):
            self._sample_rate = int(rate)

    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (22050 for espeak-ng)."""
        return self._sample_rate

    def synthesize_int16(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        """Speak ``text`` and return the raw 16-bit samples, silence lightly trimmed.

        Args:
            text: What to say (UTF-8 text, e.g. ``"three one four"``).
            voice: An espeak voice: language/accent plus optional variant, e.g. ``"en-us+m3"``.
            rate_wpm: Speaking rate in words per minute (espeak accepts 80-450).
            pitch: Base pitch, 0-100 (50 is the voice's normal pitch).

        Returns:
            ``int16`` mono samples at :attr:`sample_rate`.

        Raises:
            ValueError: If the text is empty, the voice unknown or a parameter out of range.
            RuntimeError: If espeak-ng fails to synthesise.
        """
        if not text.strip():
            raise ValueError("text to synthesise is empty")
        if not 80 <= rate_wpm <= 450 or not 0 <= pitch <= 100:
            raise ValueError(f"rate_wpm must be in 80-450 and pitch in 0-100, got {rate_wpm}, {pitch}")
        variant = voice.partition("+")[2]
        variants_dir = Path(os.fsdecode(_library_image()[1])) / "espeak-ng-data" / "voices" / "!v"
        if variant and not (variants_dir / variant).is_file():  # espeak would silently ignore it
            raise ValueError(f"espeak-ng has no voice variant {variant!r} (in {voice!r})")
        chunks: list[np.ndarray] = []

        def collect(wav: ctypes._Pointer, count: int, events: int) -> int:
            if wav and count > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        callback = _CALLBACK(collect)
        encoded = text.encode("utf-8") + b"\0"
        with _LOCK, _fresh_engine(callback) as (lib, _):
            if lib.espeak_SetVoiceByName(voice.encode("utf-8")) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
            lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0 or lib.espeak_Synchronize() != 0:
                raise RuntimeError(f"espeak_Synth failed ({status}) for {text!r} with voice {voice!r}")
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return _trim(samples.astype(np.int16, copy=False))

    def synthesize(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        """Speak ``text``; same arguments always give byte-identical audio.

        Takes the arguments of :meth:`synthesize_int16`.

        Returns:
            ``float32`` mono audio in [-1, 1) at :attr:`sample_rate`.
        """
        return self.synthesize_int16(text, voice, rate_wpm, pitch).astype(np.float32) / np.float32(32768.0)


def _voice_tag(accents: Sequence[str], variants: Sequence[str]) -> str:
    """Folder-name suffix telling non-default voice sets apart ("" for the defaults).

    Args:
        accents: espeak languages/accents used.
        variants: espeak voice variants used.

    Returns:
        ``""`` or ``"_v"`` plus 8 hex digits of a hash of the voice set.

    Raises:
        ValueError: If either sequence is empty.
    """
    if not accents or not variants:
        raise ValueError("accents and variants must not be empty")
    if tuple(accents) == ACCENTS and tuple(variants) == VARIANTS:
        return ""
    key = ",".join(accents) + "|" + ",".join(variants)
    return "_v" + hashlib.sha1(key.encode()).hexdigest()[:8]


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest whose listed files all exist.

    Args:
        folder: A dataset folder.

    Returns:
        True if the dataset can be reused as is.
    """
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return False
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            return False
        rows = list(reader)
    return bool(rows) and all((folder / row["path"]).is_file() for row in rows)


def _write_rows(folder: Path, rows: list[dict[str, str | int]]) -> None:
    """Synthesise every row's text into its FLAC file, then write the manifest.

    Args:
        folder: Where to write (paths in ``rows`` are relative to it).
        rows: Manifest rows; ``text``, ``voice``, ``rate`` and ``pitch`` drive the synthesis.
    """
    import soundfile

    synth = Synthesizer()
    for row in rows:
        audio = synth.synthesize_int16(str(row["text"]), str(row["voice"]), int(row["rate"]), int(row["pitch"]))
        target = folder / str(row["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, audio, synth.sample_rate, format="FLAC", subtype="PCM_16")
    with (folder / MANIFEST).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _build(folder: Path, rows: list[dict[str, str | int]]) -> Path:
    """Return ``folder`` if complete, else build it in a temporary folder and rename it in.

    Args:
        folder: Final dataset folder.
        rows: Manifest rows to synthesise (see :func:`_write_rows`).

    Returns:
        ``folder``, complete.
    """
    if _is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        _write_rows(tmp, rows)
        if folder.exists() and not _is_complete(folder):
            shutil.rmtree(folder)  # an incomplete or corrupted earlier copy
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first
            if not _is_complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _draw_rate_pitch(rng: np.random.Generator) -> tuple[int, int]:
    """Draw a speaking rate and a base pitch uniformly from their ranges.

    Args:
        rng: The dataset's random generator.

    Returns:
        ``(rate_wpm, pitch)``.
    """
    rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    return rate, pitch


def generate_digits(
    root: Path | str,
    seed: int = 0,
    per_voice: int = 2,
    accents: Sequence[str] = ACCENTS,
    variants: Sequence[str] = VARIANTS,
) -> Path:
    """Write (or reuse) a spoken-digits dataset: every digit word in every voice, ``per_voice`` takes.

    Each take has its own rate (``RATE_RANGE`` wpm) and pitch (``PITCH_RANGE``) drawn from
    ``numpy.random.default_rng(seed)``. Files are ``<label>/<accent>_<variant>_t<take>.flac``
    (16-bit, 22050 Hz) with ``label`` the digit word (``"zero"``-``"nine"``, an entry of
    ``DIGITS``); ``manifest.csv`` has the columns ``COLUMNS``. The defaults give
    10 x 5 x 9 x 2 = 900 clips.

    Args:
        root: Parent folder of the dataset folder.
        seed: Seed of the rate/pitch draws.
        per_voice: Takes per digit and voice.
        accents: espeak languages/accents (see ``ACCENTS``).
        variants: espeak voice variants (see ``VARIANTS``).

    Returns:
        The dataset folder ``root/spoken_digits_s{seed}_n{per_voice}`` (plus a ``_v<hash>``
        suffix for non-default voice sets).

    Raises:
        ValueError: If ``per_voice`` < 1 or a voice set is empty.
    """
    if per_voice < 1:
        raise ValueError(f"per_voice must be >= 1, got {per_voice}")
    folder = Path(root) / f"spoken_digits_s{seed}_n{per_voice}{_voice_tag(accents, variants)}"
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str | int]] = []
    for word in DIGITS:
        for accent in accents:
            for variant in variants:
                for take in range(per_voice):
                    rate, pitch = _draw_rate_pitch(rng)
                    path = f"{word}/{accent}_{variant}_t{take}.flac"
                    voice = f"{accent}+{variant}"
                    rows.append(dict(zip(COLUMNS, (path, word, word, voice, accent, variant, rate, pitch))))
    return _build(folder, rows)


def generate_digit_strings(
    root: Path | str,
    seed: int = 0,
    count: int = 1000,
    min_len: int = 3,
    max_len: int = 8,
    accents: Sequence[str] = ACCENTS,
    variants: Sequence[str] = VARIANTS,
) -> Path:
    """Write (or reuse) a dataset of spoken digit strings such as "three one four" (label "314").

    Each utterance draws, from ``numpy.random.default_rng(seed)``: a length in
    [``min_len``, ``max_len``], the digits, a voice from ``accents`` x ``variants``, a rate and a
    pitch. Files are ``<index>_<label>.flac``; the manifest is as in :func:`generate_digits`.

    Args:
        root: Parent folder of the dataset folder.
        seed: Seed of all random draws.
        count: Number of utterances.
        min_len: Fewest digits in an utterance.
        max_len: Most digits in an utterance.
        accents: espeak languages/accents (see ``ACCENTS``).
        variants: espeak voice variants (see ``VARIANTS``).

    Returns:
        The dataset folder ``root/spoken_digit_strings_s{seed}_c{count}_l{min_len}-{max_len}``
        (plus a ``_v<hash>`` suffix for non-default voice sets).

    Raises:
        ValueError: If ``count`` < 1, the lengths are not 1 <= min_len <= max_len, or a voice set is empty.
    """
    if count < 1 or not 1 <= min_len <= max_len:
        raise ValueError(f"need count >= 1 and 1 <= min_len <= max_len, got {count}, {min_len}, {max_len}")
    tag = _voice_tag(accents, variants)
    folder = Path(root) / f"spoken_digit_strings_s{seed}_c{count}_l{min_len}-{max_len}{tag}"
    rng = np.random.default_rng(seed)
    rows: list[dict[str, str | int]] = []
    for index in range(count):
        digits = rng.integers(0, 10, size=int(rng.integers(min_len, max_len + 1)))
        accent = accents[int(rng.integers(len(accents)))]
        variant = variants[int(rng.integers(len(variants)))]
        rate, pitch = _draw_rate_pitch(rng)
        label = "".join(str(d) for d in digits)
        text = " ".join(DIGITS[d] for d in digits)
        path = f"{index:05d}_{label}.flac"
        rows.append(dict(zip(COLUMNS, (path, label, text, f"{accent}+{variant}", accent, variant, rate, pitch))))
    return _build(folder, rows)
