"""A trial as something to run again: the complete ``spcl-search train`` line, or a study spec fragment.

``spcl-search best --command`` prints, per modality set, the command that trains the chosen trial again with
every setting that shaped it: form, method and its options (searched and fixed), SPCL's switches among them, lr, weight decay, batch size,
epochs, patience, clipping, standardisation, precision, model options, seeds, data path, and the threads and
device its worker used (CPU training is deterministic for a given thread count, so the command gives the trial's
dev F1 exactly). ``best --toml`` writes the same as a spec whose space holds just that setting. The effective
training settings come from the trial's record (``protocol``); trials stored before it existed get them from
the study's spec and the form's defaults.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from optuna.trial import FrozenTrial

from spcl_search.defaults import RUN
from spcl_search.methods.registry import method_options
from spcl_search.schema.records import TrialRecord
from spcl_search.schema.spec import METHOD_PARAMS, StudySpec, form

#: searched parameters that are training options rather than method settings or model options
TRAIN_PARAMS = ("lr",)


def effective(spec: StudySpec, trial: FrozenTrial) -> dict[str, Any]:
    """Every setting that shaped ``trial`` (as ``spcl-search train`` names them)."""
    record = TrialRecord.of(trial)
    params = {k: v for k, v in trial.params.items() if k != "modalities"}
    dataset = spec.dataset if spec.dataset in ("iemocap", "meld") else None
    derived = {**form(spec.backbone, spec.variant).training_defaults(dataset), **spec.train}
    derived.update(epochs=spec.epochs, clip_grad_norm=spec.train.get("clip_grad_norm", RUN["clip_grad_norm"]))
    derived.update(standardise=bool(spec.train.get("standardise", False)), precision=spec.precision)
    derived["model"] = {**spec.model, **{k: v for k, v in params.items() if k not in METHOD_PARAMS[spec.method] and k not in TRAIN_PARAMS}}
    if "lr" in params:
        derived["lr"] = params["lr"]
    protocol = {**derived, **(record.protocol or {})}
    method = (record.method or spec.method) if record.use_cl else "none"
    return {
        "backbone": spec.backbone,
        "variant": spec.variant,
        "data": spec.data or spec.dataset,
        "method": method,
        "method_params": {k: params[k] for k in METHOD_PARAMS.get(method, ()) if k in params},
        # the method's fixed options (OGM-GE's smooth, its window); a baseline trial trained without the method
        "method_fixed": {k: v for k, v in spec.method_options.items() if v is not None} if method == spec.method else {},
        "spcl": _spcl_switches(spec),
        "protocol": protocol,
        "seeds": list(record.seeds or spec.seeds),
        "threads": record.threads,
        "device": (record.device or "").split(":")[0] or None,
    }


def _spcl_switches(spec: StudySpec) -> dict[str, Any]:
    """SPCL's fixed switches a trial of ``spec`` trained with (its defaults where the spec sets none)."""
    fixed = spec.method_options if spec.method == "spcl" else {}
    options = method_options("spcl", {k: v for k, v in fixed.items() if k not in ("cl_threshold", "cl_growth")})
    return {k: options[k] for k in ("normalise", "score", "cap")}


def train_command(spec: StudySpec, trial: FrozenTrial, modalities: str) -> list[str]:
    """The ``spcl-search train`` argv that reproduces ``trial`` on ``modalities``."""
    e = effective(spec, trial)
    p = e["protocol"]
    args = ["spcl-search", "train", "--backbone", e["backbone"], "--variant", e["variant"], "--dataset", str(e["data"])]
    args += ["--modalities", modalities, "--method", e["method"]]
    if e["method"] == "spcl":
        mp = e["method_params"]
        args += ["--cl-threshold", repr(float(mp["cl_threshold"])), "--cl-growth", repr(float(mp["cl_growth"]))]
        args += ["--cl-normalise", e["spcl"]["normalise"], "--cl-score", e["spcl"]["score"], "--cl-cap", repr(float(e["spcl"]["cap"]))]
    else:
        for key, value in e["method_params"].items():
            args += ["--method-option", f"{key}={float(value)!r}"]
        for key, value in e["method_fixed"].items():
            args += ["--method-option", f"{key}={_toml(value)}"]
    args += ["--epochs", str(p["epochs"]), "--lr", repr(float(p["lr"])), "--weight-decay", repr(float(p["weight_decay"]))]
    args += ["--batch-size", str(p["batch_size"]), "--patience", str(p.get("patience") or 0), "--clip", repr(float(p["clip_grad_norm"]))]
    if p.get("standardise"):
        args.append("--standardise")
    if p.get("precision", "fp32") != "fp32":
        args += ["--precision", p["precision"]]
    for key, value in (p.get("model") or {}).items():
        if key == "reference_arithmetic":
            args += ["--reference-arithmetic"] if value else []
        else:
            args += ["--model-option", f"{key}={json.dumps(value)}"]
    args += ["--seeds", ",".join(map(str, e["seeds"]))]
    if e["threads"]:
        args += ["--threads", str(e["threads"])]
    if e["device"]:
        args += ["--device", e["device"]]
    return args


def shell_line(argv: list[str]) -> str:
    """``argv`` quoted for a POSIX shell."""
    return " ".join(shlex.quote(a) for a in argv)


def spec_fragment(spec: StudySpec, trial: FrozenTrial, modalities: str, name: str) -> str:
    """A study spec (TOML) that trains exactly ``trial``'s setting on ``modalities``: ``spcl-search run --spec``."""
    e = effective(spec, trial)
    p = e["protocol"]
    top: dict[str, Any] = {
        "name": name,
        "backbone": spec.backbone,
        "dataset": spec.dataset,
        "data": str(e["data"]),
        "kind": "search",
        "variant": spec.variant,
        "method": e["method"],
        "precision": p.get("precision", "fp32"),
        "modalities": [modalities],
        "epochs": int(p["epochs"]),
        "seeds": e["seeds"],
        "n_trials": 1,
        "sampler": "random",
        "pruner": "none",
    }
    train = {"lr": float(p["lr"]), "weight_decay": float(p["weight_decay"]), "batch_size": int(p["batch_size"])}
    train.update(patience=int(p.get("patience") or 0), clip_grad_norm=float(p["clip_grad_norm"]), standardise=bool(p.get("standardise")))
    tables: dict[str, dict[str, Any]] = {"train": train}
    if e["method"] == "spcl":
        tables["method_options"] = dict(e["spcl"])
    if p.get("model"):
        tables["model"] = dict(p["model"])
    if e["method_fixed"]:
        tables["method_options"] = {**tables.get("method_options", {}), **e["method_fixed"]}
    for key, value in e["method_params"].items():
        tables[f"space.{key}"] = {"choices": [value]}
    lines = [f"# trial {trial.number} of study {spec.name!r} on {modalities}: spcl-search run --spec THIS_FILE trains it again"]
    lines += [f"{k} = {_toml(v)}" for k, v in top.items()]
    for table, values in tables.items():
        lines += ["", f"[{table}]"] + [f"{k} = {_toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value: strings, booleans, numbers and lists of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
