"""Decoding for ``data extract`` (PyAV): which frames are sampled, what the audio becomes, errors that name the file."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from spcl_search.data.extract.media import SAMPLE_RATE, MediaError, decode_audio, sample_frames

av = pytest.importorskip("av", reason="the extract extra is not installed (pip install -e '.[extract]')")

FPS = 25


def gray_ramp_clip(path: Path, n_frames: int, container: str = "mp4") -> Path:
    """A clip whose frame i is uniformly gray at level 10 * i (so a sampled frame tells its index)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264" if container == "mp4" else "mpeg4", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = 64, 96, "yuv420p"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), 10 * i, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def indices(frames: list[np.ndarray]) -> list[int]:
    return [round(float(f.mean()) / 10) for f in frames]


def test_sampled_frames_are_evenly_spread_over_the_clip(tmp_path):
    clip = gray_ramp_clip(tmp_path / "ramp.mp4", 20)
    assert indices(sample_frames(clip, 4)) == [2, 7, 12, 17]  # the middles of four equal parts of 0.8 s


def test_sampled_frames_of_a_segment_come_from_that_time_span(tmp_path):
    clip = gray_ramp_clip(tmp_path / "ramp.avi", 24, container="avi")  # MPEG-4 part 2 in AVI, as IEMOCAP's
    assert indices(sample_frames(clip, 3, segment=(0.4, 0.64))) == [11, 13, 15]  # frames 10-16, after a seek


def test_a_clip_shorter_than_the_count_repeats_frames(tmp_path):
    clip = gray_ramp_clip(tmp_path / "short.mp4", 3)
    frames = sample_frames(clip, 8)
    assert len(frames) == 8 and set(indices(frames)) <= {0, 1, 2} and indices(frames) == sorted(indices(frames))


def test_frames_are_scaled_down_to_the_width_keeping_the_aspect(tmp_path):
    clip = gray_ramp_clip(tmp_path / "ramp.mp4", 5)
    assert sample_frames(clip, 2, width=48)[0].shape == (32, 48)
    assert sample_frames(clip, 2, width=320)[0].shape == (64, 96)  # never scaled up


def test_audio_becomes_mono_16k_float_with_its_pitch_kept(tmp_path):
    rate, seconds = 44100, 0.5
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(tone, 2).tobytes())  # the same tone on both channels
    samples = decode_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - SAMPLE_RATE * seconds) < 200
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(samples) - 440) < 5


def test_a_clip_without_sound_is_a_media_error_naming_it(tmp_path):
    clip = gray_ramp_clip(tmp_path / "silent.mp4", 5)
    with pytest.raises(MediaError, match=rf"^{clip}: has no audio track$"):
        decode_audio(clip)


def test_a_file_that_is_not_media_is_a_media_error_naming_it(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not a recording")
    with pytest.raises(MediaError, match=rf"^{path}: cannot decode its audio \("):
        decode_audio(path)
    with pytest.raises(MediaError, match=rf"^{path}: cannot decode its video \("):
        sample_frames(path, 4)
    with pytest.raises(MediaError, match=rf"^{tmp_path / 'absent.mp4'}: no such file$"):
        sample_frames(tmp_path / "absent.mp4", 4)
