"""Decode audio and video with PyAV (the FFmpeg libraries its wheels carry): no system ffmpeg is needed.

:func:`decode_audio` gives mono float32 samples at 16 kHz from any file with an audio track (a wav, or
the sound of a video clip); :func:`sample_frames` gives grayscale frames spread evenly over a clip or a
time span of it. A file that is missing, has no such track or cannot be decoded raises
:class:`MediaError`, which names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spcl_search.errors import DataError

__all__ = ["SAMPLE_RATE", "MediaError", "decode_audio", "sample_frames"]

#: Every audio input is resampled to this rate (Hz), mono, before its features are taken.
SAMPLE_RATE = 16000


class MediaError(DataError):
    """A media file is missing or cannot be decoded; ``file`` and ``reason`` are kept for skip records."""

    def __init__(self, file: str | Path, reason: str) -> None:
        self.file = str(file)
        self.reason = reason
        super().__init__(f"{file}: {reason}")


def decode_audio(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples at ``rate`` Hz of the first audio track of ``path``."""
    import av

    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(path, "has no audio track")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(container.streams.audio[0]):
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except Exception as exc:  # noqa: BLE001 - any failure to decode a user's file is a data error naming it
        raise MediaError(path, f"cannot decode its audio ({_one_line(exc)})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if samples.size == 0:
        raise MediaError(path, "has no audio samples")
    return samples.astype(np.float32, copy=False)


def sample_frames(
    path: Path, count: int, segment: tuple[float, float] | None = None, width: int = 320
) -> list[np.ndarray]:
    """``count`` grayscale uint8 frames ``[height, width]`` evenly spaced over the clip or ``segment`` (seconds).

    Frames are scaled down to at most ``width`` pixels wide (aspect kept). A clip with fewer frames than
    ``count`` repeats frames, so the result always has ``count`` entries.
    """
    import av

    frames: list[np.ndarray] = []
    start, end = segment if segment is not None else (0.0, None)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "has no video track")
            stream = container.streams.video[0]
            if segment is not None and start > 0 and stream.time_base:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else i / float(stream.average_rate or 25)
                if t < start - 1e-3:
                    continue
                if end is not None and t > end:
                    break
                w = min(width, frame.width)
                h = max(2, round(frame.height * w / frame.width / 2) * 2)
                frames.append(frame.reformat(width=w, height=h, format="gray").to_ndarray())
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except Exception as exc:  # noqa: BLE001 - any failure to decode a user's file is a data error naming it
        raise MediaError(path, f"cannot decode its video ({_one_line(exc)})") from None
    if not frames:
        span = "" if segment is None else f" between {start:.2f} s and {end:.2f} s"
        raise MediaError(path, f"has no video frames{span}")
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int) if count > 1 else [len(frames) // 2]
    return [frames[i] for i in picks]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:160]}" if type(exc).__name__ not in text else text[:160]
