"""Speech plugin: espeak-ng synthesis of spoken digits (determinism, real speech, datasets, caching)."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
sf = pytest.importorskip("soundfile")

try:
    from attnlab_speech import synth
except ImportError:  # the plugin package may not be installed yet: load the module by path
    _path = Path(__file__).resolve().parents[2] / "plugins" / "speech" / "synth.py"
    _spec = importlib.util.spec_from_file_location("attnlab_speech_synth", _path)
    synth = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = synth
    _spec.loader.exec_module(synth)

SR = 22050
SMALL = {"accents": ("en-us", "en-029"), "variants": ("m3", "f1")}  # 10 digits x 4 voices


@pytest.fixture(scope="module")
def synthesizer():
    return synth.Synthesizer()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / synth.MANIFEST).open(newline="") as f:
        return list(csv.DictReader(f))


def _file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.*")}


def _mfcc(x: np.ndarray, n: int = 13) -> np.ndarray:
    """Mean-normalised MFCC frames (512-sample Hann windows, hop 256, 40 mel bands)."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::256] * np.hanning(512)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.linspace(0, SR / 2, power.shape[1])

    def mel(hz):
        return 2595 * np.log10(1 + np.asarray(hz) / 700)

    edges = np.interp(np.linspace(mel(50), mel(8000), 42), mel(freqs), freqs)
    bank = np.array(
        [
            np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
            for lo, mid, hi in zip(edges, edges[1:], edges[2:])
        ]
    )
    dct = np.cos(np.pi / 40 * (np.arange(40) + 0.5)[None, :] * np.arange(1, n + 1)[:, None])
    coeffs = np.log(power @ bank.T + 1e-8) @ dct.T
    return coeffs - coeffs.mean(axis=0)


def _dtw(a: np.ndarray, b: np.ndarray) -> float:
    cost = np.linalg.norm(a[:, None] - b[None], axis=2)
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[-1, -1] / (len(a) + len(b)))


def _f0(x: np.ndarray) -> float:
    """Autocorrelation pitch estimate (60-400 Hz) of a 2048-sample stretch in the middle third."""
    seg = x[len(x) // 3 : len(x) // 3 + 2048].astype(np.float64)
    ac = np.correlate(seg, seg, "full")[len(seg) - 1 :]
    lo, hi = SR // 400, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


def test_voice_grid_and_digits():
    assert synth.DIGITS[0] == "zero" and synth.DIGITS[9] == "nine" and len(synth.DIGITS) == 10
    assert len(synth.ACCENTS) == 5 and len(synth.VARIANTS) == 9
    assert "f2" not in synth.VARIANTS and "f3" not in synth.VARIANTS


def test_synthesis_is_deterministic_whatever_came_before(synthesizer):
    assert synthesizer.sample_rate == SR
    first = synthesizer.synthesize("seven", "en-us+m3", rate_wpm=170, pitch=50)
    synthesizer.synthesize("three one four", "en-gb-x-rp+f4", rate_wpm=130, pitch=70)  # disturbs engine state
    synthesizer.synthesize("eight", "en-029+m7", rate_wpm=210, pitch=30)
    again = synthesizer.synthesize("seven", "en-us+m3", rate_wpm=170, pitch=50)
    assert first.dtype == np.float32 and first.ndim == 1
    assert first.tobytes() == again.tobytes()
    assert -1.0 <= first.min() < 0 < first.max() <= 1.0


def test_every_voice_speaks_a_digit_and_voices_differ(synthesizer):
    hashes = set()
    for accent in synth.ACCENTS:
        for variant in synth.VARIANTS:
            audio = synthesizer.synthesize("five", f"{accent}+{variant}", rate_wpm=170, pitch=50)
            assert 0.2 <= len(audio) / SR <= 2.5, (accent, variant, len(audio))
            assert _rms(audio) > 0.03, (accent, variant)
            hashes.add(hashlib.sha256(audio.tobytes()).hexdigest())
    assert len(hashes) == len(synth.ACCENTS) * len(synth.VARIANTS)  # accent and variant both take effect


def test_unknown_voices_are_rejected(synthesizer):
    with pytest.raises(ValueError, match="voice"):
        synthesizer.synthesize("one", "xx-nowhere+m3", 170, 50)
    with pytest.raises(ValueError, match="variant"):
        synthesizer.synthesize("one", "en-us+nobody", 170, 50)


def test_it_is_speech_rate_and_pitch_act_as_expected(synthesizer):
    slow = synthesizer.synthesize("three one four", "en-us+m3", rate_wpm=130, pitch=50)
    fast = synthesizer.synthesize("three one four", "en-us+m3", rate_wpm=210, pitch=50)
    assert len(slow) > 1.3 * len(fast)
    low = synthesizer.synthesize("zero", "en-us+m3", rate_wpm=170, pitch=30)
    high = synthesizer.synthesize("zero", "en-us+m3", rate_wpm=170, pitch=70)
    assert 60 < _f0(low) < _f0(high) < 300


def test_digits_are_recognisable_across_voices(synthesizer):
    """1-nearest-neighbour DTW on MFCCs: templates in one voice recognise digits said by other voices."""
    templates = [_mfcc(synthesizer.synthesize(w, "en-us+m3", 170, 50)) for w in synth.DIGITS]
    correct = 0
    for voice, rate, pitch in [("en-gb-x-rp+f4", 140, 65), ("en-029+m7", 200, 35)]:
        for digit, word in enumerate(synth.DIGITS):
            query = _mfcc(synthesizer.synthesize(word, voice, rate, pitch))
            correct += int(np.argmin([_dtw(query, t) for t in templates])) == digit
    assert correct >= 16  # of 20; chance is 2


def test_generate_digits_is_deterministic_and_seeded(tmp_path):
    a = synth.generate_digits(tmp_path / "a", seed=3, per_voice=1, **SMALL)
    b = synth.generate_digits(tmp_path / "b", seed=3, per_voice=1, **SMALL)
    c = synth.generate_digits(tmp_path / "c", seed=4, per_voice=1, **SMALL)
    assert a.name == b.name and a.name.startswith("spoken_digits_s3_n1")
    assert (a / synth.MANIFEST).read_bytes() == (b / synth.MANIFEST).read_bytes()
    hashes_a, hashes_c = _file_hashes(a), _file_hashes(c)
    assert hashes_a == _file_hashes(b) and len(hashes_a) == 41
    assert [(r["rate"], r["pitch"]) for r in _rows(a)] != [(r["rate"], r["pitch"]) for r in _rows(c)]
    assert sum(hashes_a[k] != hashes_c.get(k) for k in hashes_a) > 30


def test_digit_clips_are_plausible_and_match_the_manifest(tmp_path):
    folder = synth.generate_digits(tmp_path, seed=0, per_voice=2, **SMALL)
    rows = _rows(folder)
    assert tuple(rows[0]) == synth.COLUMNS and len(rows) == 10 * 2 * 2 * 2
    assert {r["voice"] for r in rows} == {"en-us+m3", "en-us+f1", "en-029+m3", "en-029+f1"}
    for row in rows:
        audio, rate = sf.read(folder / row["path"], dtype="float32")
        assert rate == SR and audio.ndim == 1
        assert 0.2 <= len(audio) / SR <= 2.5, row
        assert _rms(audio) > 0.03, row
        assert row["label"] in synth.DIGITS and row["text"] == row["label"]
        assert row["path"].startswith(row["label"] + "/")
        assert row["voice"] == f"{row['accent']}+{row['variant']}"
        assert 130 <= int(row["rate"]) <= 210 and 30 <= int(row["pitch"]) <= 70
    assert sorted({r["label"] for r in rows}) == sorted(synth.DIGITS)
    assert len({(r["rate"], r["pitch"]) for r in rows}) > len(rows) // 2


def test_complete_dataset_is_reused_and_incomplete_one_rebuilt(tmp_path):
    folder = synth.generate_digits(tmp_path, seed=1, per_voice=1, **SMALL)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*.*")}
    original = _file_hashes(folder)
    assert synth.generate_digits(tmp_path, seed=1, per_voice=1, **SMALL) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.*")} == before  # nothing rewritten
    victim = folder / _rows(folder)[5]["path"]
    victim.unlink()
    assert synth.generate_digits(tmp_path, seed=1, per_voice=1, **SMALL) == folder
    assert victim.is_file() and _file_hashes(folder) == original
    (folder / synth.MANIFEST).unlink()  # a build interrupted before its manifest
    synth.generate_digits(tmp_path, seed=1, per_voice=1, **SMALL)
    assert _file_hashes(folder) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no temporary folders left


def test_voice_subsets_get_their_own_folders(tmp_path):
    one = synth.generate_digits(tmp_path, per_voice=1, accents=("en-us",), variants=("m1",))
    two = synth.generate_digits(tmp_path, per_voice=1, accents=("en-us",), variants=("m2",))
    assert one != two and {r["variant"] for r in _rows(two)} == {"m2"}
    with pytest.raises(ValueError):
        synth.generate_digits(tmp_path, per_voice=0)


def test_digit_strings_labels_text_and_durations(tmp_path):
    folder = synth.generate_digit_strings(tmp_path / "a", seed=0, count=16, min_len=3, max_len=8, **SMALL)
    again = synth.generate_digit_strings(tmp_path / "b", seed=0, count=16, min_len=3, max_len=8, **SMALL)
    assert _file_hashes(folder) == _file_hashes(again)
    rows = _rows(folder)
    assert len(rows) == 16 and tuple(rows[0]) == synth.COLUMNS
    lengths = []
    for row in rows:
        label = row["label"]
        assert label.isdigit() and 3 <= len(label) <= 8
        assert row["text"].split() == [synth.DIGITS[int(d)] for d in label]
        audio, rate = sf.read(folder / row["path"], dtype="float32")
        assert rate == SR and _rms(audio) > 0.03
        assert 0.15 * len(label) <= len(audio) / SR <= 0.6 * len(label) + 0.5, row
        lengths.append((len(label), len(audio)))
    assert len({n for n, _ in lengths}) > 2
    assert np.corrcoef(np.array(lengths, dtype=float).T)[0, 1] > 0.5  # more digits, longer audio
