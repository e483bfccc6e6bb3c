"""Decode audio and video with PyAV (the FFmpeg libraries its wheels carry): no system ffmpeg is needed.

:func:`decode_audio` gives mono float32 samples at 16 kHz from any file with an audio track (a wav, or
the sound of a video clip); :func:`sample_frames` gives grayscale frames spread evenly over a clip or a
time span of it. A file that is missing, has no such track or cannot be decoded raises
:class:`MediaError`, which names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    Frame k is the first frame at or after the middle of the k-th of ``count`` equal parts of the span;
    only those frames are converted (scaled down to at most ``width`` pixels wide, aspect kept), and
    decoding stops after the last one. A clip with fewer frames than ``count`` repeats frames, so the
    result always has ``count`` entries.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(path, "has no video track")
            stream = container.streams.video[0]
            end: float | None
            if segment is not None:
                start, end = segment
                if start > 0 and stream.time_base:
                    container.seek(int(start / stream.time_base), stream=stream, backward=True)
            else:
                start, end = _span(container, stream)
            rate = float(stream.average_rate or 25)
            frames = _pick(container.decode(stream), count, start, end, segment is not None, width, rate)
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(path, "no such file") from None
    except Exception as exc:  # noqa: BLE001 - any failure to decode a user's file is a data error naming it
        raise MediaError(path, f"cannot decode its video ({_one_line(exc)})") from None
    if not frames:
        span = "" if segment is None else f" between {segment[0]:.2f} s and {segment[1]:.2f} s"
        raise MediaError(path, f"has no video frames{span}")
    return frames


def _span(container: Any, stream: Any) -> tuple[float, float | None]:
    """Start and end (seconds) of a video stream, from its own header or the container's; end None if unknown."""
    base = stream.time_base
    start = float(stream.start_time * base) if stream.start_time is not None and base else 0.0
    if stream.duration and base:
        return start, start + float(stream.duration * base)
    if container.duration:
        return start, start + container.duration / 1_000_000
    return start, None


def _pick(frames: Any, count: int, start: float, end: float | None, bounded: bool, width: int, rate: float) -> list[np.ndarray]:
    """Convert the frames nearest ``count`` evenly spaced times in [start, end] (all frames if ``end`` is unknown).

    Empty if no frame lies in the span.
    """
    targets = None if end is None else [start + (k + 0.5) * (end - start) / count for k in range(count)]
    slack = 0.5 / rate
    picked: list[np.ndarray] = []
    every: list[np.ndarray] = []
    last = None
    for i, frame in enumerate(frames):
        t = frame.time if frame.time is not None else start + i / rate
        if t < start - 1e-3:
            continue
        if bounded and end is not None and t > end:
            break
        last = frame
        if targets is None:
            every.append(_gray(frame, width))
            continue
        gray = None
        while len(picked) < count and t >= targets[len(picked)] - slack:
            gray = _gray(frame, width) if gray is None else gray
            picked.append(gray)
        if len(picked) == count:
            break
    if targets is None:
        return [every[i] for i in np.linspace(0, len(every) - 1, count).round().astype(int)] if every else []
    if last is None:
        return []
    if len(picked) == count:
        return picked
    return picked + [_gray(last, width)] * (count - len(picked))  # the span was shorter than its header said


def _gray(frame: Any, width: int) -> np.ndarray:
    w = min(width, frame.width)
    h = max(2, round(frame.height * w / frame.width / 2) * 2)
    return frame.reformat(width=w, height=h, format="gray").to_ndarray()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:160]}" if type(exc).__name__ not in text else text[:160]
