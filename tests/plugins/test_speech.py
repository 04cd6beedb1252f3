"""Speech plugin: features, exact masks through subsampling, SpecAugment, audio I/O, splits."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi

from attnlab.data import DataModule
from attnlab.errors import ConfigError, DataError
from attnlab_speech import (
    AudioFolder,
    DigitGeneration,
    DigitStringGeneration,
    Features,
    SpeechCommands,
    SpeechFrontend,
    SpokenDigits,
    SpokenDigitStrings,
)
from attnlab_speech.audio import MIN_SECONDS, collate_audio, read_audio
from attnlab_speech.subsample import LAYERS, ConvSubsampling

RATE = 16000


def tone(seconds: float, freq: float = 440.0, rate: int = RATE) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * torch.pi * freq * t) + 0.01 * torch.randn(len(t))


def frontend(kind: str = "logmel", factor: int = 4, **features) -> SpeechFrontend:
    torch.manual_seed(0)
    return SpeechFrontend(Features(RATE, kind=kind, n_mels=40, **features), dim=16, subsampling=factor, channels=8)


@pytest.mark.parametrize("factor", sorted(LAYERS))
def test_tokens_are_real_exactly_when_their_frames_are(factor):
    sub = ConvSubsampling(n_features=40, dim=16, factor=factor, channels=4)
    feats = torch.randn(1, 60, 40)
    for length in (17, 30, 60):
        tokens, n = sub(feats, torch.tensor([length]))
        changed = feats.clone()
        changed[:, length:] = 100.0  # anything beyond the real frames
        tokens2, _ = sub(changed, torch.tensor([length]))
        k = int(n)
        assert torch.equal(tokens[:, :k], tokens2[:, :k])
        if k < tokens.shape[1]:
            assert not torch.equal(tokens[:, k], tokens2[:, k]), "the first padded token should see padding"


@pytest.mark.parametrize("kind", ["logmel", "fbank"])
def test_a_mixed_length_batch_gives_each_clip_its_own_tokens(kind):
    fe = frontend(kind).eval()
    clips = [tone(0.9, 300), tone(0.4, 500), tone(0.63, 700)]
    batch = collate_audio([{"inputs": c, "target": 0} for c in clips], RATE)
    together = fe(batch)
    for i, clip in enumerate(clips):
        alone = fe(collate_audio([{"inputs": clip, "target": 0}], RATE))
        n = int(alone.pad_mask.sum())
        assert int(together.pad_mask[i].sum()) == n
        torch.testing.assert_close(together.x[i, :n], alone.x[0, :n], atol=1e-4, rtol=1e-4)


def test_fbank_is_kaldi_fbank():
    features = Features(RATE, kind="fbank", n_mels=23, normalize="none")
    clip = tone(0.5)
    feats, frames = features(clip[None], torch.tensor([len(clip)]))
    expected = kaldi.fbank(clip[None] * 32768.0, sample_frequency=RATE, num_mel_bins=23, dither=0.0)
    assert int(frames) == expected.shape[0]
    torch.testing.assert_close(feats[0], expected)


def test_specaugment_only_in_training():
    features = Features(RATE, n_mels=40, freq_mask=10, time_mask=10, masks=2)
    clip = tone(1.0)[None]
    lengths = torch.tensor([clip.shape[1]])
    features.train()
    a, _ = features(clip, lengths)
    b, _ = features(clip, lengths)
    assert not torch.equal(a, b) and (a == 0).any()
    features.eval()
    c, _ = features(clip, lengths)
    d, _ = features(clip, lengths)
    plain = Features(RATE, n_mels=40).eval()
    assert torch.equal(c, d) and torch.equal(c, plain(clip, lengths)[0])


def test_utterance_normalisation_uses_real_frames_only():
    features = Features(RATE, n_mels=40, normalize="utterance")
    raw = Features(RATE, n_mels=40, normalize="none")
    batch = collate_audio([{"inputs": tone(1.0), "target": 0}, {"inputs": tone(0.5), "target": 0}], RATE)
    feats, frames = features(batch["inputs"], batch["lengths"])
    plain, _ = raw(batch["inputs"], batch["lengths"])
    real = plain[1, : int(frames[1])]
    expected = (real - real.mean(0)) / (real.var(0, unbiased=False) + 1e-5).sqrt()
    torch.testing.assert_close(feats[1, : int(frames[1])], expected, atol=1e-4, rtol=1e-4)
    assert (feats[1, int(frames[1]) :] == 0).all()


def test_global_normalisation_keeps_running_stats_of_all_training_frames():
    features = Features(RATE, n_mels=40, normalize="global").train()
    raw = Features(RATE, n_mels=40, normalize="none")
    batches = [
        collate_audio([{"inputs": tone(s, f), "target": 0} for s, f in b], RATE)
        for b in ([(1.0, 200), (0.5, 900)], [(0.7, 400)])
    ]
    frames_seen = []
    for batch in batches:
        features(batch["inputs"], batch["lengths"])
        feats, frames = raw(batch["inputs"], batch["lengths"])
        frames_seen += [feats[i, : int(n)] for i, n in enumerate(frames)]
    every = torch.cat(frames_seen)
    torch.testing.assert_close(features.norm.mean, every.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(features.norm.var, every.var(0, unbiased=False), atol=1e-3, rtol=1e-3)


def test_zero_length_and_silent_clips_give_finite_tokens():
    fe = frontend(factor=8).train()
    batch = collate_audio([{"inputs": torch.zeros(0), "target": 0}, {"inputs": torch.zeros(5000), "target": 1}], RATE)
    assert batch["lengths"].tolist() == [int(MIN_SECONDS * RATE), 5000]
    tokens = fe(batch)
    assert torch.isfinite(tokens.x).all() and tokens.pad_mask.sum(1).min() >= 1


def test_stereo_and_8khz_files_are_mixed_down_and_resampled(tmp_path):
    left, right = np.sin(np.linspace(0, 200, 8000)), np.zeros(8000)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 8000)
    wave = read_audio(tmp_path / "stereo.wav", RATE)
    assert wave.shape == (16000,) and abs(float(wave.abs().max()) - 0.5) < 0.05


def test_an_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....not audio")
    with pytest.raises(DataError, match="cannot read audio file .*broken.wav"):
        read_audio(bad, RATE)


def test_bad_frontend_settings_fail_clearly():
    with pytest.raises(ConfigError, match="frontend.subsampling=3 is not supported"):
        ConvSubsampling(40, 16, factor=3)
    with pytest.raises(ConfigError, match="frontend.features.kind='mfcc' is unknown"):
        Features(RATE, kind="mfcc")


SMALL = dict(accents=("en-us", "en"), variants=("m1", "m3", "f1", "f4", "m7"))


def small_digits(tmp_path, strings: bool = False) -> DataModule:
    if strings:
        source = SpokenDigitStrings(root=str(tmp_path), generation=DigitStringGeneration(count=40, **SMALL))
    else:
        source = SpokenDigits(root=str(tmp_path), generation=DigitGeneration(per_voice=1, **SMALL))
    dm = DataModule(source, batch_size=8, seed=0)
    dm.setup()
    return dm


def voices(split) -> set[str]:
    return {
        path.name.rsplit("_t", 1)[0] for path, _ in (split.examples.dataset.items[i] for i in split.examples.indices)
    }


def test_spoken_digits_hold_out_whole_voices(tmp_path):
    dm = small_digits(tmp_path)
    train, val, test = (voices(dm.split(s)) for s in ("train", "val", "test"))
    assert train and val and test and not (train & val or train & test or val & test)
    assert sum(len(dm.split(s)) for s in ("train", "val", "test")) == 10 * 10
    assert dm.data_info() == {
        "task": "sequence",
        "num_classes": 10,
        "class_names": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
        "sample_rate": RATE,
    }
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape[0] == 8 and batch["lengths"].max() == batch["inputs"].shape[1]


def test_digit_strings_are_label_sequences(tmp_path):
    dm = small_digits(tmp_path, strings=True)
    assert dm.spec.task == "label_sequence"
    batch = next(iter(dm.train_dataloader()))
    lengths = batch["target_lengths"]
    assert ((lengths >= 3) & (lengths <= 8)).all()
    assert (batch["target"][0, : lengths[0]] >= 0).all() and (batch["target"][0, lengths[0] :] == -100).all()


def write_label_folders(root, per_label=10, rate=22050):
    for label, freq in (("high", 900), ("low", 200)):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            soundfile.write(root / label / f"{i}.flac", tone(0.3 + 0.01 * i, freq).numpy(), rate)


def test_audiofolder_reads_label_folders(tmp_path):
    write_label_folders(tmp_path)
    dm = DataModule(AudioFolder(root=str(tmp_path), val_fraction=0.2, test_fraction=0.2), seed=0)
    dm.setup()
    assert dm.data_info()["num_classes"] == 2 and dm.class_names == ["high", "low"]
    assert [len(dm.split(s)) for s in ("train", "val", "test")] == [12, 4, 4]


def test_pooled_logmel_features_separate_high_from_low(tmp_path):
    write_label_folders(tmp_path)
    dm = DataModule(AudioFolder(root=str(tmp_path), val_fraction=0.2, test_fraction=0.2), seed=0)
    features, labels = dm.raw_features("train")
    assert features.shape == (12, 80) and np.isfinite(features).all()
    # a 900 Hz tone puts its energy in higher mel bands than a 200 Hz one: the mean log-mel peak says which
    peak = features[:, :40].argmax(axis=1)
    high, low = peak[labels == 0], peak[labels == 1]
    assert high.min() > low.max()


def test_speechcommands_without_data_fails_clearly(tmp_path):
    with pytest.raises(DataError, match="does not exist; point data.source.root at the folder holding SpeechCommands"):
        DataModule(SpeechCommands(root=str(tmp_path / "nope"))).setup()


def test_a_generation_key_of_the_other_dataset_is_refused():
    with pytest.raises(TypeError, match="count"):
        DigitGeneration(count=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="data.source.sample_rate=0 must be >= 1"):
        AudioFolder(root=".", sample_rate=0)
