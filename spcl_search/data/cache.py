"""A cache of parsed feature files that cannot run code: ``.npz`` arrays plus JSON metadata.

A feature pickle is parsed once and stored under ``<cache_dir>/<sha256 of the file>.v<CACHE_VERSION>``;
later loads of the same bytes (under any name) read the cache with ``allow_pickle=False``. Both files
are written to a temporary name and moved into place with :func:`os.replace`, so a crash leaves either
no entry or a complete one; a damaged or mismatched entry reads as a miss and is rebuilt.

An entry is read *as* the file it names, so it must be this user's own (:mod:`spcl_search.data.private`):
the folder is 0700, the files 0600, and the JSON carries an HMAC-SHA256 (user key) of the arrays and
itself. An entry planted by someone else, or altered, fails that check and is rebuilt from the file.

The cache directory is ``$SPCL_SEARCH_CACHE`` when set, else ``~/.cache/spcl-search``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from spcl_search.data.formats import ParsedData
from spcl_search.data.private import private_dir, sign, verify
from spcl_search.data.types import MODALITY_ORDER, Dialogue
from spcl_search.outputs import atomic_write

logger = logging.getLogger(__name__)

__all__ = ["CACHE_VERSION", "ENV_VAR", "cache_paths", "default_cache_dir", "file_sha256", "read_cache", "write_cache"]

#: Bump when parsing changes, so that old entries are ignored rather than misread.
CACHE_VERSION = 2
#: Environment variable that overrides the default cache directory.
ENV_VAR = "SPCL_SEARCH_CACHE"


def default_cache_dir() -> Path:
    """``$SPCL_SEARCH_CACHE`` if set, else ``~/.cache/spcl-search``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spcl-search"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file's bytes (the cache key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_paths(sha256: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """The ``(.npz, .json)`` paths of the cache entry for a file with this sha256."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    stem = f"{sha256}.v{CACHE_VERSION}"
    return base / f"{stem}.npz", base / f"{stem}.json"


def write_cache(parsed: ParsedData, sha256: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Store ``parsed`` atomically and signed; return the ``.npz`` path. Raises OSError if the directory is not
    writable or not this user's."""
    npz_path, json_path = cache_paths(sha256, cache_dir)
    private_dir(npz_path.parent)
    dialogues = list(parsed.dialogues.values())
    modalities = [m for m in MODALITY_ORDER if m in dialogues[0].features]
    arrays: dict[str, Any] = {  # np.savez's stub reads a ** key as its allow_pickle flag
        "key": np.array(sha256),
        "lengths": np.array([len(d) for d in dialogues], dtype=np.int64),
        "labels": np.concatenate([d.labels for d in dialogues]),
        "speakers": np.concatenate([d.speakers for d in dialogues]),
        **{f"features_{m}": np.concatenate([d.features[m] for d in dialogues]) for m in modalities},
    }
    header = {
        "cache_version": CACHE_VERSION,
        "sha256": sha256,
        "format": parsed.format,
        "ids": [d.vid for d in dialogues],
        "train_ids": parsed.train_ids,
        "test_ids": parsed.test_ids,
        "valid_ids": parsed.valid_ids,
        "modalities": "".join(modalities),
        "n_utterances": int(arrays["lengths"].sum()),
        "meta": parsed.meta,
        "has_sentences": parsed.has_sentences,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz = buffer.getvalue()
    header["mac"] = sign(npz, _canonical(header)).hex()
    atomic_write(npz_path, npz, mode=0o600)
    atomic_write(json_path, json.dumps(header), mode=0o600)
    return npz_path


def _canonical(header: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in header.items() if k != "mac"}, sort_keys=True, separators=(",", ":")).encode()


def read_cache(sha256: str, cache_dir: str | os.PathLike[str] | None = None) -> ParsedData | None:
    """The cached content for this sha256, or ``None`` when there is no complete, consistent entry."""
    npz_path, json_path = cache_paths(sha256, cache_dir)
    if not (npz_path.is_file() and json_path.is_file()):
        return None
    try:
        if npz_path.parent.stat().st_uid != os.getuid():
            return None  # someone else's folder: never trusted (writing there fails with the reason)
        header = json.loads(json_path.read_text())
        if header.get("cache_version") != CACHE_VERSION or header.get("sha256") != sha256:
            return None
        npz = npz_path.read_bytes()
        if not verify(bytes.fromhex(str(header.get("mac", ""))), npz, _canonical(header)):
            logger.warning("feature cache entry %s failed its check (altered, or not written by you): rebuilt from the file", json_path)
            return None
        with np.load(io.BytesIO(npz), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return _from_arrays(header, arrays, sha256)
    except Exception:  # noqa: BLE001 - any damage (truncation, bad CRC, wrong shapes) means: rebuild
        return None


def _from_arrays(header: dict[str, Any], arrays: dict[str, np.ndarray], sha256: str) -> ParsedData | None:
    lengths, labels, speakers = arrays["lengths"], arrays["labels"], arrays["speakers"]
    n, ids = int(header["n_utterances"]), header["ids"]
    modalities = header["modalities"]
    feats = {m: arrays[f"features_{m}"] for m in modalities}
    consistent = (
        str(arrays["key"]) == sha256
        and len(ids) == len(lengths) > 0
        and int(lengths.sum()) == n == len(labels) == len(speakers)
        and all(x.ndim == 2 and x.shape[0] == n and x.dtype == np.float32 for x in feats.values())
        and labels.dtype == speakers.dtype == np.int64
    )
    if not consistent:
        return None
    cuts = np.cumsum(lengths)[:-1]
    per_label, per_speaker = np.split(labels, cuts), np.split(speakers, cuts)
    per_feature = {m: np.split(x, cuts) for m, x in feats.items()}
    dialogues = {
        vid: Dialogue(vid=vid, labels=per_label[i], speakers=per_speaker[i], features={m: per_feature[m][i] for m in modalities})
        for i, vid in enumerate(ids)
    }
    return ParsedData(
        format=header["format"],
        dialogues=dialogues,
        train_ids=header["train_ids"],
        test_ids=header["test_ids"],
        valid_ids=header["valid_ids"],
        meta=header["meta"],
        has_sentences=header["has_sentences"],
    )
