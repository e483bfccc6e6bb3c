"""Study specifications: what a study searches, how long, with which algorithms.

A spec comes from a TOML file (``studies/*.toml``), from command-line options, or from the study
itself (the effective spec is stored as the study's ``spec`` user attr). Options override the file;
a process that joins an existing study adopts the stored spec and is refused if an option it was
given explicitly disagrees with it (:func:`conflicts`).

The spec never imports torch: it is validated before any worker starts.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from backbones.defaults import DEFAULT_VARIANT, VARIANTS, training_defaults
from spcl_search.errors import ConfigError

KINDS = ("search", "balance")
SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("none", "median", "hyperband")
OBJECTIVES = ("train", "cheap")
#: tunable parameters and whether they are integers
PARAMS: dict[str, bool] = {"cl_threshold": False, "cl_growth": False, "lr": False, "dropout": False, "hidden": True}
#: fixed training options a spec may set (``TrainConfig`` fields other than the searched ones)
TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "clip_grad_norm", "patience", "standardise")
#: fixed SPCL switches a spec may set (threshold and growth are searched, ``enabled`` is per trial)
SPCL_KEYS = ("normalise", "score", "cap")
#: TEST-ONLY simulated trainer (``objective = "cheap"``): ``seconds`` of sleep per epoch, and an injected
#: ``fault`` raised at epoch ``fault_epoch`` (default 0) by trials whose cl_threshold exceeds ``fault_above``
CHEAP_KEYS = ("seconds", "fault", "fault_above", "fault_epoch")
#: faults the simulated trainer can inject: NaN loss, host or GPU out-of-memory, any other error
CHEAP_FAULTS = ("nan", "memory", "cuda_oom", "error")
BIMODAL = ("at", "av", "tv")
#: keys that do not identify a study: they may differ between workers without a conflict
RUNTIME_KEYS = ("data", "n_trials")
#: metric names per kind (``study.set_metric_names``); every objective is maximised
METRICS = {"search": ("dev_f1",), "balance": ("dev_f1_atv", "gain")}
_MODALITY_ORDER = "atv"


@dataclass(frozen=True)
class ParamRange:
    """One searched parameter: a ``low``..``high`` range (``log`` scale, optional ``step``) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return self.low <= value <= self.high  # type: ignore[operator]

    @property
    def upper(self) -> Any:
        """The largest value of the range (or the last choice)."""
        return self.choices[-1] if self.choices is not None else self.high


@dataclass(frozen=True)
class StudySpec:
    """The effective specification of one study (see ``studies/*.toml`` for every field)."""

    backbone: str
    dataset: str = "synthetic"
    kind: str = "search"
    variant: str = DEFAULT_VARIANT
    name: str = ""
    data: str | None = None
    modalities: tuple[str, ...] = ("atv",)
    space: dict[str, ParamRange] = field(default_factory=dict)
    epochs: int = 30
    seeds: tuple[int, ...] = (0,)
    n_trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    warm_start: str = "none"
    baseline: bool = False
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    spcl: dict[str, Any] = field(default_factory=dict)
    objective: str = "train"
    cheap: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Objective names, in order (all maximised)."""
        return METRICS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored as the study's ``spec`` user attr (``objectives`` is derived)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "space":
                value = {k: v.to_dict() for k, v in value.items()}
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        out["objectives"] = list(self.metrics)
        return out


def study_name(backbone: str, dataset: str, kind: str, variant: str = DEFAULT_VARIANT) -> str:
    """The default study name: ``<backbone>-<dataset>-<kind>`` for the default (spcl) form,
    ``<backbone>-<dataset>-<variant>-<kind>`` for another."""
    return f"{backbone}-{dataset}-{kind}" if variant == DEFAULT_VARIANT else f"{backbone}-{dataset}-{variant}-{kind}"


def default_space(dataset: str) -> dict[str, ParamRange]:
    """The paper's ranges: every value of its table lies inside them."""
    del dataset
    return {"cl_threshold": ParamRange(0.1, 1.5), "cl_growth": ParamRange(1.0, 2.0)}


def defaults(backbone: str, dataset: str = "synthetic", kind: str = "search", variant: str = DEFAULT_VARIANT) -> dict[str, Any]:
    """Default fields for ``backbone`` x ``dataset`` x ``kind`` x ``variant`` (small and quick on ``synthetic``;
    elsewhere the form's protocol, :func:`backbones.defaults.training_defaults`)."""
    synthetic = dataset == "synthetic"
    protocol = training_defaults(backbone, dataset, variant) if not synthetic else {}
    out: dict[str, Any] = {
        "backbone": backbone,
        "dataset": dataset,
        "kind": kind,
        "variant": variant,
        "data": "synthetic" if synthetic else None,
        "space": default_space(dataset),
        "epochs": 5 if synthetic else int(protocol.get("epochs") or 50),
        "seeds": (0,),
        "n_trials": 8 if synthetic else (100 if kind == "search" else 60),
    }
    if synthetic:
        # 5 epochs at the protocol's lr 2e-4 barely move DialogueGCN (dev weighted-F1 12 after 5 epochs,
        # 38 at 1e-3, measured on the synthetic set), so the quick demo trains faster.
        out["train"] = {"lr": 1e-3}
    if kind == "search":
        out.update(modalities=("atv",) if synthetic else ("atv", "at", "av", "tv"), sampler="tpe", pruner="median")
    else:
        out.update(modalities=("atv", *BIMODAL), sampler="nsga2", pruner="none", baseline=True)
    return out


# --------------------------------------------------------------------------------------------- parsing


def _modalities(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"{where}: modalities must be a non-empty list such as [\"atv\", \"at\"]")
    out = []
    for item in items:
        s = str(item).strip()
        letters = set(s)
        if not s or len(letters) != len(s) or not letters <= set(_MODALITY_ORDER):
            raise ConfigError(f"{where}: modality set {item!r} is not a subset of 'atv' (e.g. atv, at, av, tv)")
        canon = "".join(m for m in _MODALITY_ORDER if m in letters)
        if canon not in out:
            out.append(canon)
    return tuple(out)


def _range(name: str, value: Any, where: str) -> ParamRange:
    if name not in PARAMS:
        raise ConfigError(f"{where}: unknown search parameter {name!r}; choose from {', '.join(PARAMS)}")
    if isinstance(value, ParamRange):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: space.{name} must be a table with low/high (and log, step) or choices")
    unknown = set(value) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise ConfigError(f"{where}: space.{name} has unknown key(s) {', '.join(sorted(unknown))}; use low, high, log, step or choices")
    if "choices" in value:
        choices = value["choices"]
        if not isinstance(choices, (list, tuple)) or not choices or set(value) != {"choices"}:
            raise ConfigError(f"{where}: space.{name}.choices must be a non-empty list (and alone)")
        return ParamRange(choices=_choices(name, tuple(choices), where))
    try:
        low, high = float(value["low"]), float(value["high"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: space.{name} needs numeric low and high") from None
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: space.{name}.log must be true or false, got {log!r}")
    step = value.get("step")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"{where}: space.{name} needs low <= high, got {low}..{high}")
    if log and low <= 0:
        raise ConfigError(f"{where}: space.{name} is on a log scale, so low must be > 0 (got {low})")
    if log and step is not None:
        raise ConfigError(f"{where}: space.{name} cannot have both log = true and a step")
    if step is not None:
        step = _number(step, f"{where}: space.{name}.step", positive=True)
    if PARAMS[name]:
        if low != int(low) or high != int(high) or (step is not None and step != int(step)):
            raise ConfigError(f"{where}: space.{name} is an integer parameter; low, high and step must be integers")
        low, high = int(low), int(high)
        step = int(step) if step is not None else None
    return ParamRange(low, high, log, step)


def _number(value: Any, what: str, *, positive: bool = False, integer: bool = False) -> float:
    """``value`` as a finite number (> 0 with ``positive``, a whole number with ``integer``) or a ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok and positive:
        ok = value > 0
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{what} must be {kind}{' > 0' if positive else ''}, got {value!r}")
    return int(value) if integer else float(value)


def _choices(name: str, choices: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    for c in choices:
        _number(c, f"{where}: each of space.{name}.choices", integer=PARAMS[name])
    return choices


def _ints(value: Any, where: str, name: str) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else ([value] if isinstance(value, int) else value)
    try:
        if isinstance(items, (str, bytes)) or any(isinstance(x, float) and not x.is_integer() for x in items):
            raise ValueError(name)
        out = tuple(int(x) for x in items)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: {name} must be a list of integers such as [0, 1, 2]") from None
    if not out:
        raise ConfigError(f"{where}: {name} must not be empty")
    return out


def normalise(fields_: Mapping[str, Any], where: str = "spec") -> dict[str, Any]:
    """Check and canonicalise a partial spec (file fields and/or options); unknown keys are errors."""
    known = {f.name for f in fields(StudySpec)} | {"objectives"}
    unknown = set(fields_) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known fields are {', '.join(sorted(known - {'objectives'}))}")
    out: dict[str, Any] = {}
    for key, value in fields_.items():
        if value is None and key not in ("data",):
            continue
        if key == "objectives":
            continue  # derived from kind; accepted so a stored spec round-trips
        if key in ("backbone", "dataset", "name"):
            value = str(value).strip()
            if key == "backbone":
                value = value.lower().replace("-", "_")
            if not value:
                raise ConfigError(f"{where}: {key} must not be empty")
        elif key == "kind" and value not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {value!r}")
        elif key == "variant" and value not in VARIANTS:
            raise ConfigError(f"{where}: variant must be one of {', '.join(VARIANTS)}, got {value!r}")
        elif key == "sampler" and value not in SAMPLERS:
            raise ConfigError(f"{where}: sampler must be one of {', '.join(SAMPLERS)}, got {value!r}")
        elif key == "pruner" and value not in PRUNERS:
            raise ConfigError(f"{where}: pruner must be one of {', '.join(PRUNERS)}, got {value!r}")
        elif key == "objective" and value not in OBJECTIVES:
            raise ConfigError(f"{where}: objective must be one of {', '.join(OBJECTIVES)}, got {value!r}")
        elif key == "modalities":
            value = _modalities(value, where)
        elif key == "seeds":
            value = _ints(value, where, "seeds")
        elif key in ("epochs", "n_trials"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: {key} must be an integer >= 1, got {value!r}")
        elif key == "space":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: space must be a table of parameters")
            value = {k: _range(k, v, where) for k, v in value.items()}
        elif key == "warm_start":
            value = str(value)
            if value not in ("none", "paper") and not (value.startswith("paper:") and value[6:] in ("iemocap", "meld")):
                raise ConfigError(f"{where}: warm_start must be 'none', 'paper', 'paper:iemocap' or 'paper:meld', got {value!r}")
        elif key == "baseline":
            value = bool(value)
        elif key in ("train", "model", "spcl", "pruner_options", "cheap"):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: {key} must be a table")
            value = dict(value)
            allowed = {"train": TRAIN_KEYS, "spcl": SPCL_KEYS, "cheap": CHEAP_KEYS}.get(key)
            if allowed is not None and set(value) - set(allowed):
                bad = ", ".join(sorted(map(str, set(value) - set(allowed))))
                raise ConfigError(f"{where}: {key} has unknown key(s) {bad}; allowed: {', '.join(allowed)}")
            _check_values(key, value, where)
        elif key == "data" and value is not None:
            value = str(value)
        out[key] = value
    return out


def _check_values(table: str, values: Mapping[str, Any], where: str) -> None:
    """Types and ranges of the fixed ``train``, ``spcl`` and ``cheap`` values (the others are the backbone's)."""
    for key, value in values.items():
        what = f"{where}: {table}.{key}"
        if table == "train":
            if key == "standardise":
                if not isinstance(value, bool):
                    raise ConfigError(f"{what} must be true or false, got {value!r}")
            elif key == "patience":
                if _number(value, what, integer=True) < 0:
                    raise ConfigError(f"{what} must be >= 0 (0: no early stopping), got {value!r}")
            elif key == "batch_size":
                _number(value, what, positive=True, integer=True)
            elif key in ("lr",):
                _number(value, what, positive=True)
            elif _number(value, what) < 0:
                raise ConfigError(f"{what} must be >= 0, got {value!r}")
        elif table == "spcl":
            allowed = {"normalise": ("all", "selected"), "score": ("sum", "mean")}.get(key)
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
            if key == "cap":
                _number(value, what, positive=True)
        elif table == "cheap":
            if key == "fault" and value not in CHEAP_FAULTS:
                raise ConfigError(f"{what} must be one of {', '.join(CHEAP_FAULTS)}, got {value!r}")
            if key == "fault_above":
                _number(value, what)
            if key == "fault_epoch" and _number(value, what, integer=True) < 0:
                raise ConfigError(f"{what} must be >= 0, got {value!r}")
            if key == "seconds" and not 0 <= _number(value, what) <= 3600:
                raise ConfigError(f"{what} must be between 0 and 3600, got {value!r}")


def load_file(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a TOML spec file into a checked partial spec (the fields it sets).

    A file may hold ``[search]`` and ``[balance]`` tables: the one of the study's kind (``kind``, else
    the file's ``kind``, else search) is merged over the top-level fields, the other is ignored.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--spec {p}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"--spec {p}: is a directory; give the TOML file") from None
    except OSError as exc:
        raise ConfigError(f"--spec {p}: cannot read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--spec {p}: not valid TOML ({' '.join(str(exc).split())})") from None
    chosen = kind or raw.get("kind") or "search"
    per_kind = {k: raw.pop(k) for k in KINDS if isinstance(raw.get(k), dict)}
    if isinstance(chosen, str) and chosen in per_kind:  # a bad kind is reported by normalise below
        table = per_kind[chosen]
        for name, space in (("space", raw.get("space", {})), (f"{chosen}.space", table.get("space", {}))):
            if not isinstance(space, Mapping):
                raise ConfigError(f"{p}: {name} must be a table of parameters")
        space = {**raw.get("space", {}), **table.get("space", {})}
        raw = {**raw, **table}
        if space:
            raw["space"] = space
    return normalise(raw, where=str(p))


def build(requested: Mapping[str, Any]) -> StudySpec:
    """The full spec for a new study: defaults for its backbone x dataset x kind, then ``requested``."""
    req = normalise(requested)
    if "backbone" not in req:
        raise ConfigError("a new study needs a backbone: pass --backbone NAME or --spec FILE")
    kind = req.get("kind", "search")
    dataset = req.get("dataset", "synthetic")
    variant = req.get("variant", DEFAULT_VARIANT)
    base = defaults(req["backbone"], dataset, kind, variant)
    merged = {**base, **req, "space": {**base["space"], **req.get("space", {})}}
    merged["train"] = {**base.get("train", {}), **req.get("train", {})}
    merged.setdefault("name", "")
    if not merged["name"]:
        merged["name"] = study_name(merged["backbone"], dataset, kind, variant)
    spec = StudySpec(**merged)
    validate(spec)
    return spec


def validate(spec: StudySpec) -> None:
    """Checks that span several fields."""
    if spec.kind == "balance":
        if "atv" not in spec.modalities or not set(spec.modalities) & set(BIMODAL):
            raise ConfigError("a balance study trains atv and bi-modal sets: modalities must include atv and at least one of at, av, tv")
        if spec.pruner != "none":
            raise ConfigError("a balance study has two objectives and cannot prune: set pruner = \"none\"")
        if "modalities" in spec.space:
            raise ConfigError("a balance study trains fixed modality sets; remove modalities from space")
    for name in ("cl_threshold", "cl_growth"):
        if name not in spec.space:
            raise ConfigError(f"space must define {name} (the SPCL setting being searched)")
    if spec.space["cl_threshold"].choices is None and spec.space["cl_threshold"].low <= 0:  # type: ignore[operator]
        raise ConfigError("space.cl_threshold.low must be > 0")
    if spec.space["cl_growth"].choices is None and spec.space["cl_growth"].low < 1:  # type: ignore[operator]
        raise ConfigError("space.cl_growth.low must be >= 1 (the threshold only grows)")
    if spec.pruner_options and spec.pruner == "none":
        raise ConfigError("pruner_options given but pruner = \"none\"")
    if spec.pruner_options:
        from spcl_search.search.algorithms import make_pruner

        make_pruner(spec)  # ConfigError naming the bad option
    if spec.objective == "train":
        check_backbone(spec.backbone)
    if spec.objective == "train" and not spec.data:
        raise ConfigError(f"study {spec.name!r} needs a feature file for dataset {spec.dataset!r}: pass --data PATH or set data in the spec")


def check_backbone(name: str) -> None:
    """ConfigError unless ``name`` is a registered backbone (imports the backbones, hence torch)."""
    import backbones

    if name not in backbones.REGISTRY:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(backbones.REGISTRY)}")


def from_dict(stored: Mapping[str, Any]) -> StudySpec:
    """Rebuild a spec from the study's ``spec`` user attr.

    A spec stored before backbones had forms has no ``variant``: those studies trained the original forms.
    """
    fields_ = dict(stored)
    fields_.setdefault("variant", "original")
    try:
        return StudySpec(**normalise(fields_, where="stored spec"))
    except TypeError:  # a required field is missing
        raise ConfigError(
            "the study's stored spec is damaged (it has no backbone); pick a new --study name or repair the study's 'spec' attr"
        ) from None


def _canon(value: Any) -> Any:
    if isinstance(value, ParamRange):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def conflicts(stored: StudySpec, requested: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields given explicitly in ``requested`` that differ from the stored spec (runtime keys excluded)."""
    req = normalise(requested)
    out: dict[str, tuple[Any, Any]] = {}
    for key, value in req.items():
        if key in RUNTIME_KEYS:
            continue
        if key == "space":
            for name, rng in value.items():
                have_rng = stored.space.get(name)
                if have_rng is None or have_rng != rng:
                    out[f"space.{name}"] = (_canon(have_rng), _canon(rng))
            continue
        have = getattr(stored, key)
        if _canon(have) != _canon(value):
            out[key] = (_canon(have), _canon(value))
    return out


def with_runtime(spec: StudySpec, requested: Mapping[str, Any]) -> StudySpec:
    """``spec`` with the runtime keys (``data``) that ``requested`` sets."""
    req = normalise(requested)
    if req.get("data"):
        return replace(spec, data=req["data"])
    return spec


def parse_space_option(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``--space`` values: ``name=low:high``, ``name=low:high:log``, ``name=low:high:step=S`` or
    ``name=a,b,c`` (choices)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not rest:
        raise ConfigError(f"--space {text!r}: use NAME=LOW:HIGH[:log|:step=S] or NAME=A,B,C")
    if ":" not in rest:
        choices: list[Any] = []
        for item in rest.split(","):
            item = item.strip()
            try:
                choices.append(int(item))
            except ValueError:
                try:
                    choices.append(float(item))
                except ValueError:
                    choices.append(item)
        return name, {"choices": choices}
    parts = rest.split(":")
    try:
        out: dict[str, Any] = {"low": float(parts[0]), "high": float(parts[1])}
    except (ValueError, IndexError):
        raise ConfigError(f"--space {text!r}: LOW and HIGH must be numbers") from None
    for extra in parts[2:]:
        if extra == "log":
            out["log"] = True
        elif extra.startswith("step="):
            try:
                out["step"] = float(extra[5:])
            except ValueError:
                raise ConfigError(f"--space {text!r}: step must be a number") from None
        else:
            raise ConfigError(f"--space {text!r}: unknown suffix {extra!r} (use log or step=S)")
    return name, out


def requested_fields(spec_file: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Spec fields asked for: those of ``spec_file`` overridden by the options that are not None.

    ``space`` options (a list of ``--space`` strings) are merged into the file's space per parameter.
    """
    out: dict[str, Any] = dict(load_file(spec_file, options.get("kind"))) if spec_file else {}
    space_opts = options.pop("space", None) or []
    for key, value in options.items():
        if value is not None:
            out[key] = value
    if space_opts:
        space = dict(out.get("space", {}))
        for text in space_opts:
            name, rng = parse_space_option(text)
            space[name] = rng
        out["space"] = space
    return normalise(out, where="options")
