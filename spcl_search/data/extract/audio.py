"""Audio features: openSMILE functionals (PyPI ``opensmile``, which runs the openSMILE library offline).

The sound of an utterance (its wav, or the audio track of its video clip) is decoded to mono 16 kHz
float32 (:func:`~spcl_search.data.extract.media.decode_audio`) and summarised by one of openSMILE's
standard feature sets at the functionals level (one vector per utterance): ``eGeMAPSv02`` (88, the
default: the Geneva minimalistic set for affect), ``emobase`` (988) or ``ComParE_2016`` (6373).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.extract.base import file_identity, missing_file, package_version
from spcl_search.data.extract.corpus import Problem, Utterance
from spcl_search.data.extract.media import SAMPLE_RATE, MediaError, decode_audio
from spcl_search.errors import ConfigError

__all__ = ["AUDIO_SETS", "AudioSpec", "OpenSmileFunctionals", "audio_spec"]

#: ``--audio-set`` choices (openSMILE feature sets) and their dims at the functionals level.
AUDIO_SETS = {"eGeMAPSv02": 88, "ComParE_2016": 6373, "emobase": 988}


@dataclass(frozen=True)
class AudioSpec:
    """An openSMILE feature set, taken at the functionals level."""

    feature_set: str = "eGeMAPSv02"
    modality: str = "a"
    cacheable: bool = True
    batch: int = 1

    def describe(self) -> dict[str, Any]:
        return {
            "name": "opensmile",
            "version": package_version("opensmile"),
            "feature_set": self.feature_set,
            "feature_level": "Functionals",
            "sample_rate": SAMPLE_RATE,
            "channels": "mono",
            "decoder": f"PyAV {package_version('av')}",
        }

    def provenance(self) -> str:
        return f"openSMILE {self.feature_set} functionals (opensmile {package_version('opensmile')}), 16 kHz mono"

    def check(self, u: Utterance) -> Problem | None:
        return missing_file(u, u.audio, "audio or video")

    def inputs(self, u: Utterance) -> str:
        return str(u.audio)

    def identity(self, u: Utterance) -> list[Any]:
        return file_identity(u.audio)

    def build(self) -> OpenSmileFunctionals:
        return OpenSmileFunctionals(self)


class OpenSmileFunctionals:
    """The configured openSMILE extractor; :meth:`extract` takes audio or video file paths."""

    def __init__(self, spec: AudioSpec) -> None:
        import opensmile

        self.smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, spec.feature_set), feature_level=opensmile.FeatureLevel.Functionals
        )

    def extract(self, inputs: Sequence[str]) -> np.ndarray:
        rows = []
        for name in inputs:
            path = Path(name)
            samples = decode_audio(path)
            try:
                row = self.smile.process_signal(samples, SAMPLE_RATE).to_numpy(dtype=np.float32)[0]
            except Exception as exc:  # noqa: BLE001 - openSMILE refusing a signal is a defect of that file
                raise MediaError(path, f"openSMILE failed on its audio ({type(exc).__name__}: {exc})") from None
            if not np.isfinite(row).all():
                raise MediaError(path, "openSMILE gave non-finite features for its audio")
            rows.append(row)
        return np.stack(rows)


def audio_spec(feature_set: str = "eGeMAPSv02") -> AudioSpec:
    """Check ``--audio-set`` and that openSMILE is installed."""
    if feature_set not in AUDIO_SETS:
        raise ConfigError(f"`audio_set` {feature_set!r} is not one of {', '.join(AUDIO_SETS)}")
    for module, package in (("opensmile", "opensmile"), ("av", "av")):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"audio features need the '{package}' package: pip install 'spcl-search[extract]'")
    return AudioSpec(feature_set=feature_set)
