"""The study schema: what a study searches, how long, with which algorithms, parsed once.

A spec enters at three boundaries, and each parses it once into typed values:

* a TOML file (``studies/*.toml``): :func:`load_file`;
* command-line options, over a file's fields: :func:`requested_fields`;
* the study itself (the effective spec is stored as the study's ``spec`` user attr): :func:`from_dict`.

The first two give a :class:`Request` (the fields asked for, checked and canonical); :func:`build` lays a
request over the defaults of its backbone x dataset x kind x variant (:func:`defaults`, read from
:mod:`spcl_search.defaults` and the registered form class, :func:`form`) into a frozen :class:`StudySpec`. A
process that joins an existing study adopts the stored spec and is refused if a field it asked for explicitly disagrees with it (:func:`conflicts`).
Every field is parsed by one entry of :data:`FIELDS`; adding a field is a :class:`StudySpec` attribute
and one entry there.

The schema never imports torch or optuna: it is validated before any worker starts.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from backbones.registry import DEFAULT_FORM as DEFAULT_VARIANT
from backbones.registry import Form, lookup
from spcl_search.defaults import DEFAULT_PRECISION, PRECISIONS, STUDY
from spcl_search.errors import ConfigError
from spcl_search.methods import registry
from spcl_search.methods.registry import DEFAULT_METHOD
from spcl_search.schema.limits import LIMITS
from spcl_search.schema.method_options import method_options, parse_option
from spcl_search.schema.track import parse_target

KINDS = ("search", "balance")
SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("none", "median", "hyperband")
#: the ``median`` pruner's options when a new search asks for none: stop only a trial below 0.85 x the median,
#: checked from half the epochs on (spcl_search.search.pruning; benchmarks/search_quality.py measured why)
MEDIAN_MARGIN = 0.15
#: racing (spec ``[race]``): its switches and their defaults. ``alpha``: a setting stops when the one-sided
#: test says it is worse than the incumbent at this level; ``test``: ``t`` (paired t with the study's pooled
#: seed-to-seed spread, from one seed on) or ``wilcoxon`` (the one-sided signed-rank test, for many seeds)
RACE_DEFAULTS: dict[str, Any] = {"enabled": False, "alpha": 0.1, "test": "t"}
RACE_TESTS = ("t", "wilcoxon")
#: the seeds a racing study draws on when none are given
RACE_SEEDS = (0, 1, 2, 3, 4)
#: the training parameters any study may search, and whether they are integers
TRAIN_SEARCHED: dict[str, bool] = {"lr": False, "dropout": False, "hidden": True}


class _MethodParams(Mapping[str, tuple[str, ...]]):
    """method -> the parameters a study of it searches (its registered space), read when first asked."""

    def __getitem__(self, method: str) -> tuple[str, ...]:
        return tuple(registry.space(method)) if method in registry.methods() else ()

    def __iter__(self) -> Iterator[str]:
        return iter(registry.methods())

    def __len__(self) -> int:
        return len(registry.methods())


class _Params(Mapping[str, bool]):
    """Tunable parameter -> whether it is an integer: the methods' own (SPCL's cl_threshold/cl_growth, OGM-GE's
    alpha, ...) and the training ones any study may add."""

    def _all(self) -> dict[str, bool]:
        return {**{name: False for name in registry.searched_names()}, **TRAIN_SEARCHED}

    def __getitem__(self, name: str) -> bool:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


#: tunable parameters per method (the registry's spaces)
METHOD_PARAMS: Mapping[str, tuple[str, ...]] = _MethodParams()
#: every tunable parameter and whether it is an integer
PARAMS: Mapping[str, bool] = _Params()
#: fixed training options a spec may set (``TrainConfig`` fields other than the searched ones)
TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "clip_grad_norm", "patience", "standardise")
#: a spec's ``spcl`` table (stored studies, older spec files): SPCL's fixed options, read as ``method_options``
LEGACY_SPCL_TABLE = "spcl"
#: modality sets in the order of the paper's tables (tri-modal first): every table and figure uses it
MODALITY_SETS = ("atv", "at", "tv", "av")
TRI_MODAL = "atv"
BIMODAL = frozenset({"at", "tv", "av"})
#: the sets a balance study (and a search on a real dataset) trains by default, in the order its spec stores them
TRAINED_SETS = ("atv", "at", "av", "tv")
#: keys that do not identify a study: they may differ between workers without a conflict
RUNTIME_KEYS = ("data", "n_trials", "track")
#: metric names per kind (``study.set_metric_names``); every objective is maximised
METRICS = {"search": ("dev_f1",), "balance": ("dev_f1_atv", "gain")}
#: what a study stored before a field existed trained with: the original forms (before forms), SPCL (before
#: balance methods), fp32 (before ``precision``); mapped once, when a stored spec is read (:func:`from_dict`)
LEGACY_DEFAULTS: dict[str, str] = {"variant": "original", "method": DEFAULT_METHOD, "precision": DEFAULT_PRECISION}
#: stored fields that older versions wrote and this one ignores (``objectives`` is derived from ``kind``;
#: ``objective`` and ``cheap`` named a simulated trainer, which tests now inject)
IGNORED_STORED = ("objectives", "objective", "cheap")


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
        return self.bounds[0] <= value <= self.bounds[1]

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of a range (ValueError for choices)."""
        if self.low is None or self.high is None:
            raise ValueError("a parameter given as choices has no bounds")
        return self.low, self.high

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
    method: str = DEFAULT_METHOD
    #: forward-pass arithmetic of every trial (``--precision``); a spec stored before it existed trained fp32
    precision: str = DEFAULT_PRECISION
    name: str = ""
    data: str | None = None
    modalities: tuple[str, ...] = (TRI_MODAL,)
    space: dict[str, ParamRange] = field(default_factory=dict)
    epochs: int = 30
    seeds: tuple[int, ...] = (0,)
    n_trials: int = 20
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    warm_start: str = "none"
    baseline: bool = False
    #: the method's fixed options, not searched (OGM-GE's ``smooth``, its window); the rest take their defaults
    method_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    #: racing over the seeds (``RACE_DEFAULTS``); empty or ``enabled = false``: every trial trains every seed
    race: dict[str, Any] = field(default_factory=dict)
    #: experiment tracking of the trials (``mlflow`` or ``mlflow:URI``; empty: none), a runtime setting like ``data``
    track: str = ""

    @property
    def racing(self) -> bool:
        """Whether trials race over the seeds (a setting gets the next seed only while it is not worse than the incumbent)."""
        return bool(self.race.get("enabled"))

    @property
    def metrics(self) -> tuple[str, ...]:
        """Objective names, in order (all maximised)."""
        return METRICS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored as the study's ``spec`` user attr (``objectives`` is derived)."""
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        out["objectives"] = list(self.metrics)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, ParamRange):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def study_name(backbone: str, dataset: str, kind: str, variant: str = DEFAULT_VARIANT, method: str = DEFAULT_METHOD) -> str:
    """The default study name: ``<backbone>-<dataset>-<kind>`` for the defaults (the spcl form, the SPCL method);
    another form or method is named before the kind: ``mmgcn-iemocap-original-search``,
    ``mmgcn-iemocap-ogm_ge-search``, ``mmgcn-iemocap-original-ogm_ge-search``."""
    parts = [backbone, dataset]
    parts += [variant] if variant != DEFAULT_VARIANT else []
    parts += [method] if method != DEFAULT_METHOD else []
    return "-".join([*parts, kind])


def default_space(method: str = DEFAULT_METHOD) -> dict[str, ParamRange]:
    """The ranges a study of ``method`` searches (the method's registered ``space``); SPCL's hold every value
    of the paper's table."""
    return {name: ParamRange(low, high, log) for name, (low, high, log) in registry.space(method).items()}


def defaults(
    backbone: str, dataset: str = "synthetic", kind: str = "search", variant: str = DEFAULT_VARIANT, method: str = DEFAULT_METHOD
) -> dict[str, Any]:
    """Default fields for ``backbone`` x ``dataset`` x ``kind`` x ``variant`` x ``method`` (small and quick on
    ``synthetic``; elsewhere the form's protocol, :meth:`backbones.registry.Form.training_defaults`)."""
    real = int(dataset != "synthetic")
    epochs = STUDY["epochs"][real] or int(form(backbone, variant).training_defaults(dataset).get("epochs") or 50)
    out: dict[str, Any] = {
        "backbone": backbone,
        "dataset": dataset,
        "kind": kind,
        "variant": variant,
        "method": method,
        "data": None if real else "synthetic",
        "space": default_space(method),
        "epochs": epochs,
        "seeds": (0,),
        "n_trials": STUDY[f"n_trials_{kind}"][real],
        "train": dict(STUDY["train"][real]),
    }
    if kind == "search":
        out.update(modalities=TRAINED_SETS if real else (TRI_MODAL,), sampler="tpe", pruner="median")
    else:
        out.update(modalities=TRAINED_SETS, sampler="nsga2", pruner="none", baseline=True)
    return out


# --------------------------------------------------------------------------------------- field parsers


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


def _modalities(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f'{where}: modalities must be a non-empty list such as ["atv", "at"]')
    out: list[str] = []
    for item in items:
        s = str(item).strip()
        letters = set(s)
        if not s or len(letters) != len(s) or not letters <= set(TRI_MODAL):
            raise ConfigError(f"{where}: modality set {item!r} is not a subset of 'atv' (e.g. atv, at, av, tv)")
        canon = "".join(m for m in TRI_MODAL if m in letters)
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
        for c in choices:
            _number(c, f"{where}: each of space.{name}.choices", integer=PARAMS[name])
        out = ParamRange(choices=tuple(choices))
        _check_range(name, out, where)
        return out
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
        out = ParamRange(int(low), int(high), log, int(step) if step is not None else None)
    else:
        out = ParamRange(low, high, log, step)
    _check_range(name, out, where)
    return out


def _check_range(name: str, rng: ParamRange, where: str) -> None:
    """Every value of a searched range lies in the parameter's allowed range (:data:`~spcl_search.schema.limits.LIMITS`)."""
    limit = LIMITS.get(name)
    values = rng.choices if rng.choices is not None else rng.bounds
    bad = next((v for v in values if limit is not None and not limit.holds(v)), None)
    if limit is not None and bad is not None:
        raise ConfigError(f"{where}: space.{name} must hold only values that are {limit.describe()}, got {bad!r}")


def _space(value: Any, where: str) -> dict[str, ParamRange]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: space must be a table of parameters")
    return {k: _range(k, v, where) for k, v in value.items()}


def _ints(value: Any, where: str) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else ([value] if isinstance(value, int) else value)
    try:
        if isinstance(items, (str, bytes)) or any(isinstance(x, float) and not x.is_integer() for x in items):
            raise ValueError("seeds")
        out = tuple(int(x) for x in items)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: seeds must be a list of integers such as [0, 1, 2]") from None
    if not out:
        raise ConfigError(f"{where}: seeds must not be empty")
    bad = next((seed for seed in out if not LIMITS["seed"].holds(seed)), None)
    if bad is not None:
        raise ConfigError(f"{where}: seeds must be integers >= 0, got {bad}")
    return out


def _text(key: str) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        text = str(value).strip()
        if key == "backbone":
            text = text.lower().replace("-", "_")
        if not text:
            raise ConfigError(f"{where}: {key} must not be empty")
        return text

    return parse


def _choice(key: str, choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _count(key: str) -> Callable[[Any, str], int]:
    def parse(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: {key} must be an integer >= 1, got {value!r}")
        return value

    return parse


def _warm_start(value: Any, where: str) -> str:
    text = str(value)
    if text not in ("none", "paper") and not (text.startswith("paper:") and text[6:] in ("iemocap", "meld")):
        raise ConfigError(f"{where}: warm_start must be 'none', 'paper', 'paper:iemocap' or 'paper:meld', got {text!r}")
    return text


def _check_train(key: str, value: Any, what: str) -> None:
    if key == "standardise":
        if not isinstance(value, bool):
            raise ConfigError(f"{what} must be true or false, got {value!r}")
    elif not LIMITS[key].holds(value):
        extra = " (0: no early stopping)" if key == "patience" else ""
        raise ConfigError(f"{what} must be {LIMITS[key].describe()}{extra}, got {value!r}")


def _check_model(key: str, value: Any, what: str) -> None:
    """The model options every backbone shares (``dropout``, ``hidden``); the others are the backbone's."""
    if key in ("dropout", "hidden") and not LIMITS[key].holds(value):
        raise ConfigError(f"{what} must be {LIMITS[key].describe()}, got {value!r}")


def _table(
    key: str, allowed: tuple[str, ...] | None = None, check: Callable[[str, Any, str], None] | None = None
) -> Callable[[Any, str], dict[str, Any]]:
    """A table field; ``allowed`` keys only, each value checked by ``check`` (the others are the backbone's)."""

    def parse(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {key} must be a table")
        out = dict(value)
        if allowed is not None and set(out) - set(allowed):
            bad = ", ".join(sorted(map(str, set(out) - set(allowed))))
            raise ConfigError(f"{where}: {key} has unknown key(s) {bad}; allowed: {', '.join(allowed)}")
        for k, v in out.items():
            if check is not None:
                check(k, v, f"{where}: {key}.{k}")
        return out

    return parse


def _check_race(key: str, value: Any, what: str) -> None:
    if key == "enabled" and not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false, got {value!r}")
    if key == "alpha" and not 0 < _number(value, what) < 1:
        raise ConfigError(f"{what} must lie strictly between 0 and 1, got {value!r}")
    if key == "test" and value not in RACE_TESTS:
        raise ConfigError(f"{what} must be one of {', '.join(RACE_TESTS)}, got {value!r}")


def _method(value: Any, where: str) -> str:
    """A registered method's name (the registry's choices, plug-ins included)."""
    return _choice("method", registry.names())(value, where)


def _data(value: Any, where: str) -> str | None:
    del where
    return None if value is None else str(value)


def _track(value: Any, where: str) -> str:
    """``mlflow``, ``mlflow:URI`` or a ``[track]`` table (backend, uri) as ``mlflow[:URI]``; ``""``: no tracking."""
    target = parse_target(value, where if where.startswith("--") else f"{where}: track")
    return "" if target is None else str(target)


#: field name -> parser(value, where) -> canonical value; one entry per StudySpec field
FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "backbone": _text("backbone"),
    "dataset": _text("dataset"),
    "kind": _choice("kind", KINDS),
    "variant": _text("variant"),  # checked with the backbone, by form()
    "method": lambda value, where: _method(value, where),
    "precision": _choice("precision", PRECISIONS),
    "name": _text("name"),
    "data": _data,
    "modalities": _modalities,
    "space": _space,
    "epochs": _count("epochs"),
    "seeds": _ints,
    "n_trials": _count("n_trials"),
    "sampler": _choice("sampler", SAMPLERS),
    "pruner": _choice("pruner", PRUNERS),
    "pruner_options": _table("pruner_options"),
    "warm_start": _warm_start,
    "baseline": lambda value, where: bool(value),
    "method_options": _table("method_options"),
    "train": _table("train", TRAIN_KEYS, _check_train),
    "model": _table("model", check=_check_model),
    "race": _table("race", tuple(RACE_DEFAULTS), _check_race),
    "track": _track,
}
assert set(FIELDS) == {f.name for f in fields(StudySpec)}, "every StudySpec field needs a parser"


# --------------------------------------------------------------------------------------------- requests


class Request(Mapping[str, Any]):
    """The spec fields asked for explicitly (a file's and/or options), each parsed once and canonical.

    A read-only mapping of field name to value; ``None`` values are dropped, except ``data``.
    """

    def __init__(self, raw: Mapping[str, Any] | None = None, where: str = "spec") -> None:
        raw = _legacy(dict(raw or {}), where)
        known = set(FIELDS) | {"objectives"}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known fields are {', '.join(sorted(FIELDS))}")
        self._fields: dict[str, Any] = {k: FIELDS[k](v, where) for k, v in raw.items() if k in FIELDS and (v is not None or k == "data")}

    @classmethod
    def of(cls, requested: Mapping[str, Any], where: str = "spec") -> Request:
        """``requested`` itself if already parsed, else parsed now."""
        return requested if isinstance(requested, Request) else cls(requested, where)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Request({self._fields!r})"

    def but(self, **changes: Any) -> Request:
        """A copy with ``changes`` (already canonical values) applied."""
        out = Request()
        out._fields = {**self._fields, **changes}
        return out

    @property
    def study_name(self) -> str:
        """The study this request refers to: its ``name``, else ``<backbone>-<dataset>[-<variant>]-<kind>``."""
        if self.get("name"):
            return str(self["name"])
        if not self.get("backbone"):
            raise ConfigError("name the study (--study NAME) or describe a new one (--backbone NAME or --spec FILE)")
        return study_name(
            self["backbone"],
            self.get("dataset", "synthetic"),
            self.get("kind", "search"),
            self.get("variant", DEFAULT_VARIANT),
            self.get("method", DEFAULT_METHOD),
        )


def _legacy(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """``raw`` with the older ``spcl`` table (SPCL's fixed switches) moved into ``method_options``."""
    table = raw.pop(LEGACY_SPCL_TABLE, None)
    if table is None:
        return raw
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: spcl must be a table")
    options = raw.get("method_options")
    raw["method_options"] = {**table, **options} if isinstance(options, Mapping) else (options if options is not None else dict(table))
    return raw


def load_file(path: str | Path, kind: str | None = None) -> Request:
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
    if isinstance(chosen, str) and chosen in per_kind:  # a bad kind is reported by the parse below
        table = per_kind[chosen]
        for name, space in (("space", raw.get("space", {})), (f"{chosen}.space", table.get("space", {}))):
            if not isinstance(space, Mapping):
                raise ConfigError(f"{p}: {name} must be a table of parameters")
        space = {**raw.get("space", {}), **table.get("space", {})}
        raw = {**raw, **table}
        if space:
            raw["space"] = space
    return Request(raw, where=str(p))


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
            for convert in (int, float):
                try:
                    choices.append(convert(item))
                    break
                except ValueError:
                    continue
            else:
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


def requested_fields(spec_file: str | Path | None = None, **options: Any) -> Request:
    """Spec fields asked for: those of ``spec_file`` overridden by the options that are not None.

    ``space`` options (a list of ``--space`` strings) are merged into the file's space per parameter, and
    ``method_option`` ones (``KEY=VALUE`` strings) into its ``method_options`` per option.
    """
    out: dict[str, Any] = dict(load_file(spec_file, options.get("kind"))) if spec_file else {}
    space_opts = options.pop("space", None) or []
    option_opts = options.pop("method_option", None) or []
    race = options.pop("race", None)
    given = {key: value for key, value in options.items() if value is not None}
    if set(given) - set(FIELDS):
        Request(given, where="options")  # a ConfigError naming the unknown fields
    for key, value in given.items():  # an error names the option: "--seeds: seeds must be ..."
        out[key] = FIELDS[key](value, "--" + key.replace("_", "-"))
    if race is not None:
        out["race"] = {**out.get("race", {}), **race}
    if space_opts:
        asked = dict(parse_space_option(text) for text in space_opts)
        _space(asked, "--space")
        out["space"] = {**out.get("space", {}), **asked}
    if option_opts:
        out["method_options"] = {**out.get("method_options", {}), **dict(parse_option(text) for text in option_opts)}
    return Request(out, where="options")


# ------------------------------------------------------------------------------------------------ specs


def build(requested: Mapping[str, Any]) -> StudySpec:
    """The full spec for a new study: defaults for its backbone x dataset x kind x variant, then ``requested``."""
    req = Request.of(requested)
    if "backbone" not in req:
        raise ConfigError("a new study needs a backbone: pass --backbone NAME or --spec FILE")
    method = req.get("method", DEFAULT_METHOD)
    base = defaults(
        req["backbone"], req.get("dataset", "synthetic"), req.get("kind", "search"), req.get("variant", DEFAULT_VARIANT), method
    )
    # the study files define SPCL's ranges; run with another method (--method ogm_ge) they do not apply
    asked = {k: v for k, v in req.get("space", {}).items() if method == "spcl" or k not in METHOD_PARAMS["spcl"]}
    merged = {**base, **req, "space": {**base["space"], **asked}, "train": {**base["train"], **req.get("train", {})}}
    merged["name"] = merged.get("name") or req.study_name
    if merged.get("race", {}).get("enabled"):
        merged["race"] = {**RACE_DEFAULTS, **merged["race"]}
        if "seeds" not in req:
            merged["seeds"] = RACE_SEEDS
        if "pruner" not in req:
            merged["pruner"] = "none"  # the race is the pruning
    if merged.get("pruner") == "median" and "pruner_options" not in req:
        merged["pruner_options"] = {"margin": MEDIAN_MARGIN, "n_warmup_steps": max(1, int(merged["epochs"]) // 2)}
    spec = StudySpec(**merged)
    validate(spec)
    return spec


def validate(spec: StudySpec) -> None:
    """Checks that span several fields."""
    if spec.kind == "balance":
        if TRI_MODAL not in spec.modalities or not set(spec.modalities) & set(BIMODAL):
            raise ConfigError("a balance study trains atv and bi-modal sets: modalities must include atv and at least one of at, av, tv")
        if spec.pruner != "none":
            raise ConfigError('a balance study has two objectives and cannot prune: set pruner = "none"')
        if "modalities" in spec.space:
            raise ConfigError("a balance study trains fixed modality sets; remove modalities from space")
    for name in METHOD_PARAMS[spec.method]:
        if name not in spec.space:
            raise ConfigError(f"space must define {name} (a setting of method {spec.method} being searched)")
    stray = sorted(set(spec.space) & set(foreign_params(spec.method)))
    if stray:
        raise ConfigError(
            f"space.{stray[0]} is not a setting of method {spec.method}; its settings are {', '.join(METHOD_PARAMS[spec.method]) or 'none'}"
        )
    method_options(spec.method, spec.method_options)  # ConfigError naming the bad option
    searched = sorted(set(spec.method_options) & set(spec.space))
    if searched:
        raise ConfigError(f"method_options.{searched[0]} is searched (space.{searched[0]}); fix it in one place only")
    _check_method_space(spec)
    if spec.method != "spcl" and spec.warm_start != "none":
        raise ConfigError(f"--warm-start {spec.warm_start}: the paper's settings are SPCL's; method {spec.method} has none to start from")
    if spec.racing:
        if spec.kind != "search":
            raise ConfigError("racing applies to search studies (one objective); a balance study trains every seed of every trial")
        if len(spec.seeds) < 2:
            raise ConfigError(f"racing needs several seeds to race over, got seeds {list(spec.seeds)}; give e.g. --seeds 0,1,2,3,4")
        if spec.pruner != "none":
            raise ConfigError(f"racing stops settings by itself; drop pruner {spec.pruner!r} (or set it to none) to race")
    if spec.pruner_options and spec.pruner == "none":
        raise ConfigError('pruner_options given but pruner = "none"')
    if spec.pruner_options:
        from spcl_search.search.algorithms import (
            make_pruner,  # optuna, only when there are options to check
        )

        make_pruner(spec)  # ConfigError naming the bad option
    form(spec.backbone, spec.variant)
    if not spec.data:
        raise ConfigError(
            f"study {spec.name!r} needs a feature file for dataset {spec.dataset!r}: pass --data PATH or set data in the spec"
        )


def _check_method_space(spec: StudySpec) -> None:
    """Each end of a searched method parameter must be a value the option takes (``space.cl_threshold.low must
    be > 0``)."""
    options = {o.name: o for o in registry.get(spec.method).options}
    for name in METHOD_PARAMS[spec.method]:
        rng, option = spec.space[name], options.get(name)
        if option is None or option.minimum is None or rng.choices is not None:
            continue
        low = rng.bounds[0]
        if low < option.minimum or (option.above and low == option.minimum):
            raise ConfigError(f"space.{name}.low must be {'>' if option.above else '>='} {option.minimum:g}")


def foreign_params(method: str) -> tuple[str, ...]:
    """Parameters that belong to some method's space but not to ``method``'s."""
    own = set(METHOD_PARAMS[method])
    return tuple(sorted({n for names in METHOD_PARAMS.values() for n in names} - own))


def form(backbone: str, variant: str) -> type[Form]:
    """The registered form class of ``backbone`` x ``variant``; ConfigError naming the choices otherwise (the
    registry imports no torch)."""
    try:
        return lookup(backbone, variant)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def from_dict(stored: Mapping[str, Any]) -> StudySpec:
    """Rebuild a spec from the study's ``spec`` user attr.

    A spec stored before backbones had forms has no ``variant``: those studies trained the original forms; one
    stored before balance methods has no ``method``: those trained SPCL; one stored before ``precision`` trained fp32.
    """
    fields_ = {k: v for k, v in stored.items() if k not in IGNORED_STORED}
    for key, value in LEGACY_DEFAULTS.items():
        fields_.setdefault(key, value)
    try:
        return StudySpec(**Request(fields_, where="stored spec"))
    except TypeError:  # a required field is missing
        raise ConfigError(
            "the study's stored spec is damaged (it has no backbone); pick a new --study name or repair the study's 'spec' attr"
        ) from None


def _canon(value: Any) -> Any:
    value = _jsonable(value)
    if isinstance(value, Mapping):
        return {k: _canon(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canon(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def conflicts(stored: StudySpec, requested: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields given explicitly in ``requested`` that differ from the stored spec (runtime keys excluded)."""
    out: dict[str, tuple[Any, Any]] = {}
    for key, value in Request.of(requested).items():
        if key in RUNTIME_KEYS:
            continue
        if key == "space":
            for name, rng in value.items():
                have = stored.space.get(name)
                if have != rng:
                    out[f"space.{name}"] = (_canon(have), _canon(rng))
        elif key == "race":
            race_have, race_want = {**RACE_DEFAULTS, **stored.race}, {**RACE_DEFAULTS, **value}
            if _canon(race_have) != _canon(race_want):
                out[key] = (_canon(race_have), _canon(race_want))
        elif _canon(getattr(stored, key)) != _canon(value):
            out[key] = (_canon(getattr(stored, key)), _canon(value))
    return out


def with_runtime(spec: StudySpec, requested: Mapping[str, Any]) -> StudySpec:
    """``spec`` with the runtime keys (``data``, ``track``) that ``requested`` sets."""
    request = Request.of(requested)
    data, track = request.get("data"), request.get("track")
    spec = replace(spec, data=data) if data else spec
    return replace(spec, track=track) if track is not None else spec
