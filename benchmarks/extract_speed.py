"""Utterances per second of ``spcl-search data extract`` per modality, with 1 and 2 worker processes.

Why: extraction is the long job before any training (IEMOCAP has 10k utterances, MELD 14k); a user needs
to know how long it takes and whether ``--jobs`` helps. This script synthesises a corpus in the manifest
layout (nothing here is from a real dataset): espeak-ng speaks generated sentences, and each utterance is
an H.264 clip (MELD-like 1280x720 by default) showing a face photograph, with that speech as its sound.
Each (modality, jobs) pair runs in a fresh process with an empty cache and reports:

- ``first s``: seconds until the first utterance is done (model loading, worker start-up);
- ``steady utt/s``: utterances per second after that (what a long job runs at);
- ``overall utt/s``: utterances over the whole extraction, loading included;
- ``CPU ms/utt``: CPU time per utterance after the first (one process, all its threads; 1 job only). It
  does not depend on what else runs on the machine: on an idle core a single-threaded extractor (audio,
  visual) runs at about 1000 / this utterances per second, and ``--jobs N`` on N idle cores up to N times that.

    python benchmarks/extract_speed.py                       # 48 clips, 1024 sentences, jobs 1 and 2
    python benchmarks/extract_speed.py --clips 96 --size 480x640

Needs espeak-ng and the ``extract`` extra. Run it on an otherwise idle machine; the load average before
each run is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from extract_corpora import speak, write_clip, write_manifest  # noqa: E402  (the tests' corpus builders)

WORDS = (
    "I you we they it this that what why how when never always really just so very all right well no yes okay "
    "know think want need said told come go going get got look see tell feel love hate mean sorry wait stop "
    "here there now then today tonight tomorrow time money job apartment coffee door phone car party dinner "
    "great terrible fine wrong sure crazy funny late again together alone something nothing everything"
).split()

CHILD = r"""
import json, sys, time
from spcl_search.data.extract import ExtractOptions, extract
source, out, cache, modality, jobs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
class Clock:
    def start(self, totals, done):
        self.marks = []
    def advance(self, modality, n):
        self.marks.append((time.perf_counter(), n, time.process_time()))
clock = Clock()
begin = time.perf_counter()
summary = extract("manifest", source, out, ExtractOptions(modalities=modality, jobs=jobs, cache_dir=cache), progress=clock)
end = time.perf_counter()
(t_first, n_first, cpu_first), (t_last, _, cpu_last) = clock.marks[0], clock.marks[-1]
n = sum(k for _, k, _ in clock.marks)
print(json.dumps({
    "utterances": n, "first": t_first - begin, "overall": n / (end - begin),
    "steady": (n - n_first) / (t_last - t_first) if t_last > t_first else float("nan"),
    "cpu_ms": 1000 * (cpu_last - cpu_first) / (n - n_first) if jobs == 1 and n > n_first else float("nan"),
}))
"""


def sentence(rng: np.random.Generator) -> str:
    words = rng.choice(WORDS, size=int(rng.integers(4, 16)))
    return " ".join(words).capitalize() + rng.choice([".", "?", "!"])


def make_corpus(root: Path, clips: int, sentences: int, size: tuple[int, int], seed: int = 0) -> tuple[Path, Path]:
    """Two manifests: ``clips`` utterances with a clip each (audio, visual) and ``sentences`` text-only rows."""
    rng = np.random.default_rng(seed)
    media_rows, text_rows = [], []
    for i in range(clips):
        dialogue, split = f"d{i // 8}", ("train", "train", "dev", "test")[(i // 8) % 4]
        text = sentence(rng)
        wav = root / "wav" / f"{i}.wav"
        seconds = speak(text, wav, "MF"[i % 2])
        write_clip(root / "clips" / f"{i}.mp4", seconds, wav, size=size)
        media_rows.append([dialogue, i % 8, "AB"[i % 2], "c", split, text, "", f"clips/{i}.mp4"])
    for i in range(sentences):
        split = ("train", "train", "dev", "test")[(i // 16) % 4]
        text_rows.append([f"t{i // 16}", i % 16, "AB"[i % 2], "c", split, sentence(rng), "", ""])
    return write_manifest(root / "media.csv", media_rows), write_manifest(root / "text.csv", text_rows)


def measure(source: Path, modality: str, jobs: int, work: Path) -> dict[str, float]:
    tag = f"{modality}-{jobs}"
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(work / f"{tag}.pkl"), str(work / f"cache-{tag}"), modality, str(jobs)],
        capture_output=True, text=True, cwd=REPO,
    )
    if run.returncode != 0:
        sys.exit(f"extraction {tag} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=48, help="utterances with a clip (audio and visual runs)")
    ap.add_argument("--sentences", type=int, default=1024, help="text-only utterances (text runs)")
    ap.add_argument("--size", default="720x1280", help="clip frame size HEIGHTxWIDTH (MELD: 720x1280)")
    ap.add_argument("--jobs", default="1,2", help="worker counts to compare")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.split("x"))
    jobs = [int(j) for j in args.jobs.split(",")]

    import opensmile
    import sentence_transformers
    import skimage
    import torch

    print(f"# {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads in one process; split between workers), sentence-transformers "
          f"{sentence_transformers.__version__}, opensmile {opensmile.__version__}, scikit-image {skimage.__version__}")
    with tempfile.TemporaryDirectory(prefix="extract-speed-") as tmp:
        work = Path(tmp)
        media, text = make_corpus(work / "corpus", args.clips, args.sentences, size)
        print(f"# SYNTHESISED corpus: {args.clips} espeak-ng utterances as {size[1]}x{size[0]} H.264 clips "
              f"(mean {mean_seconds(work / 'corpus' / 'wav'):.2f} s), {args.sentences} generated sentences; "
              "defaults: all-MiniLM-L6-v2 batch 64, openSMILE eGeMAPSv02, face-hog 8 frames")
        print(f"{'modality':<8} {'jobs':>4} {'utterances':>10} {'first s':>8} {'steady utt/s':>13} {'overall utt/s':>14} "
              f"{'CPU ms/utt':>11}  load avg")
        for modality, source in (("t", text), ("a", media), ("v", media)):
            for j in jobs:
                load = os.getloadavg()[0]
                r = measure(source, modality, j, work)
                cpu = f"{r['cpu_ms']:.1f}" if r["cpu_ms"] == r["cpu_ms"] else "-"
                print(f"{modality:<8} {j:>4} {r['utterances']:>10} {r['first']:>8.2f} {r['steady']:>13.1f} "
                      f"{r['overall']:>14.1f} {cpu:>11}  {load:.2f}", flush=True)


def mean_seconds(folder: Path) -> float:
    import soundfile

    return float(np.mean([soundfile.info(str(p)).duration for p in folder.glob("*.wav")]))


if __name__ == "__main__":
    main()
