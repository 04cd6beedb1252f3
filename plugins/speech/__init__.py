"""The speech plugin: filterbank features + conv subsampling as tokens; spoken digits and more."""

from pathlib import Path

from attnlab.plugins import Plugin
from attnlab_speech.augment import WaveAugment
from attnlab_speech.data import (
    AudioFolder,
    DigitGeneration,
    DigitStringGeneration,
    SpeechCommands,
    SpokenDigits,
    SpokenDigitStrings,
)
from attnlab_speech.features import Features
from attnlab_speech.frontend import SpeechFrontend

plugin = Plugin(
    name="speech",
    description="log-mel/fbank features, SpecAugment, conv subsampling; truncated attention; spoken digits",
    config_dir=Path(__file__).parent / "conf",
    frontends=(SpeechFrontend,),
    sources=(SpokenDigits, SpokenDigitStrings, SpeechCommands, AudioFolder),
)

__all__ = [
    "AudioFolder",
    "DigitGeneration",
    "DigitStringGeneration",
    "Features",
    "SpeechCommands",
    "SpeechFrontend",
    "SpokenDigitStrings",
    "SpokenDigits",
    "WaveAugment",
    "plugin",
]
