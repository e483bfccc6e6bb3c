"""Visual features: face appearance from the clip with models that ship inside a wheel, or arrays made elsewhere.

**face-hog** (the default) samples ``frames`` frames evenly over the utterance (over its time span in
IEMOCAP's dialogue videos), finds the largest frontal face in each with the LBP cascade that scikit-image
ships (OpenCV's ``lbpcascade_frontalface`` model; nothing is downloaded) and describes the face by the
HOG of its 64x64 grayscale crop. The utterance vector (655 values) is: the fraction of frames with a face;
the mean and the standard deviation of the face HOG over those frames (324 each); the mean face box
(centre x, centre y, height, relative to the frame); and frame brightness, contrast and motion (mean
absolute difference of consecutive sampled frames). With no face in any frame the face part is zero,
as the SPCL files mark faces not found. HOG of a face crop is a hand-made appearance descriptor, not
an expression model (OpenFace action units or a CNN trained on facial expressions are stronger): make
those elsewhere and import them with ``--visual-from DIR``.

**imported** (``--visual-from DIR``) reads ``DIR/<utterance id>.npy`` (a vector, or a ``[frames, dim]``
array that is averaged over frames), opened without pickle.
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
from spcl_search.data.extract.media import MediaError, sample_frames
from spcl_search.errors import ConfigError

__all__ = ["FACE_HOG_DIM", "FaceHog", "FaceHogSpec", "ImportedArrays", "ImportedSpec", "visual_spec"]

_CROP = 64
#: Faces are searched for in a copy of the frame this wide (about 4x fewer pixels than 320: 4x faster).
_DETECT_WIDTH = 192
_DETECT = {"scale_factor": 1.25, "step_ratio": 1, "min_size": 24}
_HOG: dict[str, Any] = {"orientations": 9, "pixels_per_cell": (16, 16), "cells_per_block": (2, 2)}
_HOG_DIM = 324  # (64/16 - 2 + 1)^2 blocks x 2x2 cells x 9 orientations
#: Length of a face-hog vector: face rate, HOG mean and std, face box, frame statistics.
FACE_HOG_DIM = 1 + 2 * _HOG_DIM + 3 + 3


@dataclass(frozen=True)
class FaceHogSpec:
    """Face detection and HOG on ``frames`` frames per utterance, scaled to ``width`` pixels."""

    frames: int = 8
    width: int = 320
    modality: str = "v"
    cacheable: bool = True
    batch: int = 1

    def describe(self) -> dict[str, Any]:
        return {
            "name": "face-hog",
            "version": f"scikit-image {package_version('scikit-image')}",
            "detector": "LBP frontal-face cascade (OpenCV's lbpcascade_frontalface, shipped with scikit-image); largest face per frame",
            "detect_width": _DETECT_WIDTH,
            "detect": dict(_DETECT),
            "descriptor": f"HOG of the {_CROP}x{_CROP} grayscale face crop "
            f"({_HOG['orientations']} orientations, {_HOG['pixels_per_cell'][0]}px cells, 2x2 blocks)",
            "layout": "face rate, HOG mean (324), HOG std (324), face box (x, y, height), brightness, contrast, motion",
            "frames": self.frames,
            "width": self.width,
            "dim": FACE_HOG_DIM,
            "decoder": f"PyAV {package_version('av')}",
        }

    def provenance(self) -> str:
        return (
            f"face-hog: LBP face cascade + HOG of the face crop (scikit-image {package_version('scikit-image')}), "
            f"{self.frames} frames per utterance"
        )

    def check(self, u: Utterance) -> Problem | None:
        return missing_file(u, u.video, "video")

    def inputs(self, u: Utterance) -> tuple[str, tuple[float, float] | None]:
        return str(u.video), u.segment

    def identity(self, u: Utterance) -> list[Any]:
        return [*file_identity(u.video), list(u.segment) if u.segment else None]

    def build(self) -> FaceHog:
        return FaceHog(self)


class FaceHog:
    """The loaded face detector; :meth:`extract` takes ``(video path, segment)`` pairs."""

    def __init__(self, spec: FaceHogSpec) -> None:
        from skimage import data
        from skimage.feature import Cascade

        self.spec = spec
        self.detector = Cascade(data.lbp_frontal_face_cascade_filename())

    def extract(self, inputs: Sequence[tuple[str, tuple[float, float] | None]]) -> np.ndarray:
        return np.stack([self.describe(sample_frames(Path(p), self.spec.frames, seg, self.spec.width)) for p, seg in inputs])

    def describe(self, frames: list[np.ndarray]) -> np.ndarray:
        """The face-hog vector of a list of grayscale uint8 frames."""
        from skimage.feature import hog
        from skimage.transform import rescale, resize

        hogs, boxes = [], []
        images = [f.astype(np.float32) / 255.0 for f in frames]
        size = _DETECT["min_size"]
        for img in images:
            h, w = img.shape
            scale = min(1.0, _DETECT_WIDTH / w)
            small = rescale(img, scale, anti_aliasing=True) if scale < 1.0 else img
            side = min(small.shape)
            if side < size:
                continue
            found = self.detector.detect_multi_scale(
                img=small, scale_factor=_DETECT["scale_factor"], step_ratio=_DETECT["step_ratio"],
                min_size=(size, size), max_size=(side, side),
            )
            if not found:
                continue
            face = max(found, key=lambda d: (d["width"] * d["height"], -d["r"], -d["c"]))
            r, c = round(face["r"] / scale), round(face["c"] / scale)
            fh, fw = round(face["height"] / scale), round(face["width"] / scale)
            crop = resize(img[r : r + fh, c : c + fw], (_CROP, _CROP), anti_aliasing=True)
            hogs.append(hog(crop, feature_vector=True, **_HOG))
            boxes.append(((c + fw / 2) / w, (r + fh / 2) / h, fh / h))
        out = np.zeros(FACE_HOG_DIM, dtype=np.float32)
        out[0] = len(hogs) / len(images)
        if hogs:
            stacked = np.stack(hogs)
            out[1 : 1 + _HOG_DIM] = stacked.mean(axis=0)
            out[1 + _HOG_DIM : 1 + 2 * _HOG_DIM] = stacked.std(axis=0)
            out[1 + 2 * _HOG_DIM : 4 + 2 * _HOG_DIM] = np.mean(boxes, axis=0)
        motion = [float(np.abs(a - b).mean()) for a, b in zip(images, images[1:])] if images[0].shape == images[-1].shape else []
        out[-3:] = (np.mean([i.mean() for i in images]), np.mean([i.std() for i in images]), np.mean(motion) if motion else 0.0)
        return out


@dataclass(frozen=True)
class ImportedSpec:
    """Per-utterance arrays made elsewhere: ``root/<utterance id>.npy``."""

    root: str
    modality: str = "v"
    cacheable: bool = False
    batch: int = 1

    def describe(self) -> dict[str, Any]:
        return {"name": "imported", "from": self.root, "format": "<utterance id>.npy: a vector, or [frames, dim] averaged over frames"}

    def provenance(self) -> str:
        return f"imported from {self.root}"

    def check(self, u: Utterance) -> Problem | None:
        path = self._path(u)
        if not path.resolve().is_relative_to(Path(self.root).resolve()):  # an utterance id with ../ in it
            return Problem(u.uid, u.dialogue, u.where, f"utterance id '{u.uid}' names {path}, outside --visual-from {self.root}")
        return missing_file(u, path, "visual array")

    def inputs(self, u: Utterance) -> str:
        return str(self._path(u))

    def identity(self, u: Utterance) -> list[Any]:
        return file_identity(self._path(u))

    def build(self) -> ImportedArrays:
        return ImportedArrays()

    def _path(self, u: Utterance) -> Path:
        return Path(self.root) / f"{u.uid}.npy"


class ImportedArrays:
    """Reads ``.npy`` files without pickle; :meth:`extract` takes their paths."""

    def extract(self, inputs: Sequence[str]) -> np.ndarray:
        rows = [self._read(Path(p)) for p in inputs]
        if len({r.shape for r in rows}) > 1:
            raise MediaError(inputs[-1], f"has {rows[-1].size} values, unlike the {rows[0].size} of {inputs[0]}")
        return np.stack(rows)

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - an unreadable array is a defect of that file
            raise MediaError(path, f"cannot be read as a .npy array ({type(exc).__name__})") from None
        if arr.dtype.kind not in "iuf" or arr.ndim not in (1, 2) or arr.size == 0:
            raise MediaError(path, f"holds a {arr.dtype} array of shape {arr.shape}; expected a vector or [frames, dim] of numbers")
        vector = (arr.mean(axis=0) if arr.ndim == 2 else arr).astype(np.float32)
        if not np.isfinite(vector).all():
            raise MediaError(path, "holds NaN or inf values")
        return vector


def visual_spec(frames: int = 8, visual_from: str | Path | None = None) -> FaceHogSpec | ImportedSpec:
    """``--visual-from DIR`` when given, else face-hog; check the option and the packages it needs."""
    if visual_from is not None:
        root = Path(visual_from).expanduser()
        if not root.is_dir():
            raise ConfigError(f"`visual_from` {visual_from}: no such folder (it should hold <utterance id>.npy files)")
        return ImportedSpec(root=str(root.resolve()))
    if frames < 1:
        raise ConfigError(f"`visual_frames` must be at least 1, got {frames}")
    for module, package in (("skimage", "scikit-image"), ("av", "av")):
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"visual features need the '{package}' package: pip install 'spcl-search[extract]' (or pass `visual_from` DIR)"
            )
    return FaceHogSpec(frames=frames)
