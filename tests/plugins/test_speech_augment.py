"""Waveform augmentation (attnlab_speech.WaveAugment): speed as torchaudio resamples it, noise at the
asked signal-to-noise ratio, nothing when off, and the same clip for the same seed; through the
DataModule, clips keep their labels, evaluation sees plain clips, and the seed fixes the batches."""

from __future__ import annotations

import math

import pytest
import soundfile
import torch
import torchaudio.functional as AF
from lightning_fabric.utilities.data import _set_sampler_epoch

from attnlab.data import DataModule
from attnlab.errors import ConfigError
from attnlab_speech import AudioFolder, WaveAugment
from helpers import same_batches

RATE = 16000


def tone(seconds: float = 0.5, hz: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    return 0.5 * torch.sin(2 * math.pi * hz * t)


def test_off_is_the_identity():
    wave = tone()
    assert torch.equal(WaveAugment(RATE)(wave), wave)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_one_speed_is_torchaudios_resampling_by_that_factor(factor):
    wave = tone()
    out = WaveAugment(RATE, speeds=[factor])(wave)
    expected = AF.resample(wave, int(factor * RATE), RATE)  # played `factor` times faster
    torch.testing.assert_close(out, expected)
    assert abs(len(out) - len(wave) / factor) <= 1


def test_speeds_are_drawn_per_clip_from_the_list():
    wave, augment = tone(), WaveAugment(RATE, speeds=[0.9, 1.0, 1.1])
    lengths = set()
    for seed in range(30):
        torch.manual_seed(seed)
        lengths.add(len(augment(wave)))
    assert lengths == {len(AF.resample(wave, int(f * RATE), RATE)) for f in (0.9, 1.0, 1.1)}


def test_noise_comes_at_the_asked_signal_to_noise_ratio():
    wave = tone(1.0)
    torch.manual_seed(0)
    out = WaveAugment(RATE, noise=1.0, snr=[20.0, 20.0])(wave)
    noise = out - wave
    snr = 10 * math.log10(float(wave.pow(2).sum() / noise.pow(2).sum()))
    assert snr == pytest.approx(20.0, abs=1e-3)
    assert abs(float(noise.mean())) < 0.01  # white Gaussian noise, centred


def test_the_same_seed_gives_the_same_clip():
    augment, wave = WaveAugment(RATE, speeds=[0.9, 1.0, 1.1], noise=0.5), tone()

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return augment(wave)

    assert torch.equal(run(1), run(1))
    assert any(not torch.equal(run(1), run(s)) for s in range(2, 6))


def test_bad_settings_and_inputs_are_one_line():
    with pytest.raises(ConfigError, match="snr"):
        WaveAugment(RATE, snr=[30.0, 10.0])
    with pytest.raises(ConfigError, match="speeds"):
        WaveAugment(RATE, speeds=[])
    with pytest.raises(ConfigError, match="choose augment=none"):
        WaveAugment(RATE)(torch.zeros(1, 3, 8, 8))


# --- through the DataModule ------------------------------------------------------------

SECONDS = {"low": 0.30, "mid": 0.45, "high": 0.65}  # each word's clips have their own length


@pytest.fixture
def folder(tmp_path):
    for word, seconds in SECONDS.items():
        (tmp_path / word).mkdir()
        for take in range(10):
            soundfile.write(tmp_path / word / f"{take}.wav", tone(seconds, 200.0 + 30 * take).numpy(), RATE)
    return tmp_path


def datamodule(root, seed: int = 0, augment: WaveAugment | None = None):
    dm = DataModule(AudioFolder(root=str(root), sample_rate=RATE), batch_size=4, seed=seed)
    dm.setup()
    dm.set_transforms(augment, None)
    return dm


def epoch(dm, number: int = 0) -> list[dict]:
    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, number)
    return list(loader)


def test_sped_up_clips_keep_their_labels_and_evaluation_sees_plain_clips(folder):
    speeds = [0.9, 1.1]
    dm = datamodule(folder, augment=WaveAugment(RATE, speeds=speeds, noise=0.5))
    names = dm.class_names
    expected = {k: {round(RATE * SECONDS[name] / f) for f in speeds} for k, name in enumerate(names)}
    seen = 0
    for batch in epoch(dm):
        for length, label in zip(batch["lengths"].tolist(), batch["target"].tolist()):
            assert any(abs(length - n) <= 1 for n in expected[label])  # its own word's length, at one of the speeds
            seen += 1
    assert seen == len(dm.split("train"))
    plain = datamodule(folder)
    for name in ("val", "test"):
        assert same_batches(list(getattr(dm, f"{name}_dataloader")()), list(getattr(plain, f"{name}_dataloader")()))


def test_the_same_seed_gives_the_same_augmented_clips(folder):
    def run(seed: int) -> list[dict]:
        return epoch(datamodule(folder, seed, WaveAugment(RATE, speeds=[0.9, 1.0, 1.1], noise=0.5)), number=1)

    first = run(3)
    torch.manual_seed(999)  # whatever the global RNG did in between
    assert same_batches(first, run(3))
    assert not same_batches(first, run(4))
