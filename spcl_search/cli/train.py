"""``spcl-search train``: train one SPCL-wrapped backbone and show dev/test figures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import backbones
from spcl_search.cli import app
from spcl_search.defaults import RUN
from spcl_search.errors import ConfigError
from spcl_search.methods import registry
from spcl_search.outputs import atomic_write
from spcl_search.results import EPOCH_BASE
from spcl_search.tracking import RunTracker, parse_target, require, training_tracker

console = Console()


def _spcl_help(option: str) -> str:
    """An SPCL flag's help: the option's own, and what the flag stands for."""
    found = next(o for o in registry.get("spcl").options if o.name == option)
    return f"SPCL's {found.help}, default {registry.shown(found.default)} (the same as --method-option {option}=VALUE)."


@app.command()
def train(
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Backbone: late_fusion, mmgcn, dialoguegcn, mm_dfn, biddin.")] = "mmgcn",
    variant: Annotated[
        str,
        typer.Option(
            "--variant",
            "--form",
            help="Backbone form: 'spcl' (the SPCL code's, whose settings the paper reports) or 'original' (the backbone's own paper).",
        ),
    ] = "spcl",
    reference_arithmetic: Annotated[
        bool,
        typer.Option(
            "--reference-arithmetic", help="spcl form: reproduce the SPCL code's arithmetic, defects included (attention over padding)."
        ),
    ] = False,
    standardise: Annotated[
        bool, typer.Option("--standardise", help="Standardise each feature dimension with train-split mean and std.")
    ] = False,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Feature pickle (SPCL or DialogueGCN format) or 'synthetic'.")
    ] = "synthetic",
    modalities: Annotated[str, typer.Option("--modalities", "-m", help="Modality subset: a, t, v, at, av, tv, atv.")] = "atv",
    cl_threshold: Annotated[float | None, typer.Option(help=_spcl_help("cl_threshold"))] = None,
    cl_growth: Annotated[float | None, typer.Option(help=_spcl_help("cl_growth"))] = None,
    cl_normalise: Annotated[str | None, typer.Option(help=_spcl_help("normalise"))] = None,
    cl_score: Annotated[str | None, typer.Option(help=_spcl_help("score"))] = None,
    cl_cap: Annotated[float | None, typer.Option(help=_spcl_help("cap"))] = None,
    no_cl: Annotated[
        bool, typer.Option("--no-cl", help="Train without SPCL (plain NLL on the joint prediction); the same as --method none.")
    ] = False,
    method: Annotated[str | None, typer.Option("--method", help=registry.help_line() + f" Default: {registry.DEFAULT_METHOD}.")] = None,
    method_option: Annotated[list[str] | None, typer.Option("--method-option", help=registry.options_help())] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs [default: the form's protocol].")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate [default: the backbone's].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Adam weight decay [default: the backbone's].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Dialogues per batch [default: the backbone's].")] = None,
    clip: Annotated[float, typer.Option(help="Gradient-norm clipping (L2); 0 disables.")] = RUN["clip_grad_norm"],
    patience: Annotated[
        int | None, typer.Option(help="Stop after this many epochs without a better dev F1 [default: the form's; 0: never].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (model init, batch order).")] = RUN["seed"],
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Comma list of seeds, e.g. 0,1,2: trains each and prints each plus mean ± std (replaces --seed)."),
    ] = None,
    model_option: Annotated[
        list[str] | None,
        typer.Option("--model-option", help="A backbone constructor option KEY=VALUE (repeatable), e.g. dropout=0.3, hidden=128."),
    ] = None,
    dev_fraction: Annotated[float, typer.Option(help="Dev fraction of train dialogues when the file has no validVid.")] = 0.1,
    device: Annotated[str, typer.Option(help="auto (CUDA if available), cpu, cuda or cuda:N.")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads [default: torch's].")] = None,
    precision: Annotated[
        str,
        typer.Option("--precision", help="fp32, or bf16: forward passes under bfloat16 autocast (CPU and CUDA; recorded with the run)."),
    ] = "fp32",
    checkpoint: Annotated[Path | None, typer.Option(help="Write the best-dev model here (atomically).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full result (config, history, figures) as JSON.")] = None,
    track: Annotated[
        str | None,
        typer.Option("--track", help="Track the run in MLflow: mlflow (./mlruns) or mlflow:URI (experiment spcl-search-train)."),
    ] = None,
) -> None:
    """Train one SPCL-wrapped backbone; select on dev, report test at the best dev epoch."""
    from spcl_search.data.load import load_dataset
    from spcl_search.train import TrainConfig, effective_protocol
    from spcl_search.train import train as run_training

    form = _form(backbone, variant)
    if reference_arithmetic and "reference_arithmetic" not in form.accepts:
        accepting = [f for f in backbones.forms(backbone) if "reference_arithmetic" in backbones.lookup(backbone, f).accepts]
        raise ConfigError(f"--reference-arithmetic applies to --variant {' or '.join(accepting) or '(none of this backbone)'} only")
    method = _chosen_method(method, no_cl)
    aliases = {"cl_threshold": cl_threshold, "cl_growth": cl_growth, "normalise": cl_normalise, "score": cl_score, "cap": cl_cap}
    options = {**_method_options(method_option or []), **_spcl_aliases(method, aliases)}
    seed_list = _seed_list(seeds, seed)
    model = {**_model_options(model_option or []), **({"reference_arithmetic": True} if reference_arithmetic else {})}
    config = TrainConfig(
        backbone=backbone,
        variant=variant,
        modalities=modalities,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        clip_grad_norm=clip,
        seed=seed,
        device=device,
        threads=threads,
        patience=patience,
        precision=precision,
        standardise=standardise,
        method=method,
        method_options=options,  # TrainConfig checks them (a one-line ConfigError naming the option)
        model=model,
        checkpoint=str(checkpoint) if checkpoint else None,
    )
    if json_out is not None and json_out.is_dir():
        raise ConfigError(f"--json {json_out}: is a directory; give a file path")
    from spcl_search.outputs import check_writable

    for output in (json_out, checkpoint):
        if output is not None:
            check_writable(output)  # before training, not after it
    target = parse_target(track)
    require(target)
    ds = load_dataset(dataset, dev_fraction=dev_fraction)  # every option is checked by now
    tags = {"backbone": backbone, "form": variant, "method": method, "dataset": ds.name}
    tracked: RunTracker | None = None

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=console,
    )
    total = effective_protocol(config, ds.name)["epochs"]
    results = []
    with progress:
        task = progress.add_task("epoch", total=total, stats="", visible=len(seed_list) == 1)

        def on_epoch(r) -> None:
            progress.update(
                task,
                advance=1,
                stats=f"loss {r.train_loss:.3f}  take {r.take_rate:.0%}"
                + ("" if r.threshold is None else f"  thr {r.threshold:.2f}")
                + f"  dev F1 {r.dev_f1:.2f}  ({r.seconds:.1f}s)",
            )
            if tracked is not None:
                tracked.epoch(config.modalities, r.epoch, r)

        for k, s in enumerate(seed_list):
            config = replace(config, seed=s)
            if len(seed_list) > 1:  # one bar per seed: "seed 0 (1/3) epoch 4/15"
                progress.stop_task(task)
                task = progress.add_task(f"seed {s} ({k + 1}/{len(seed_list)}) epoch", total=total, stats="")
            if target is not None:  # one tracked run per seed
                tracked = training_tracker(target, f"{backbone} {modalities} on {ds.name}, seed {s}", {**tags, "seed": str(s)})
            result = run_training(ds, config, callback=on_epoch)
            results.append(result)
            progress.update(task, completed=total)  # a run stopped early leaves no gap
            if tracked is not None:
                tracked.finish_training(result)

    surrogate = ds.info.get("surrogate") or []
    if ds.name == "synthetic":
        tag = " (fully synthetic data)"
    elif surrogate:
        tag = f" (SURROGATE {', '.join(surrogate)} features)"
    else:
        tag = ""
    title = f"{backbone} ({variant} form) {result.config['modalities']} on {ds.name}{tag}"
    table = Table(title=title)
    if len(results) == 1:
        for col in ("split", "weighted-F1 %", "accuracy %"):
            table.add_column(col, justify="right" if col != "split" else "left")
        table.add_row(f"dev (best: epoch {result.best_epoch} of {len(result.history)})", f"{result.dev_f1:.2f}", f"{result.dev_acc:.2f}")
        table.add_row("test (at best dev epoch)", f"{result.test_f1:.2f}", f"{result.test_acc:.2f}")
    else:
        for col in ("seed", "best epoch", "dev w-F1 %", "test w-F1 % (at best dev epoch)", "dev acc %", "test acc %"):
            table.add_column(col, justify="right")
        for s, r in zip(seed_list, results):
            table.add_row(
                str(s),
                f"{r.best_epoch} of {len(r.history)}",
                f"{r.dev_f1:.2f}",
                f"{r.test_f1:.2f}",
                f"{r.dev_acc:.2f}",
                f"{r.test_acc:.2f}",
            )
        summary = seeds_summary(results)
        table.add_row(
            "mean ± std",
            "-",
            *(f"{summary['mean'][k]:.2f} ± {summary['std'][k]:.2f}" for k in ("dev_f1", "test_f1", "dev_acc", "test_acc")),
        )
    console.print(table)
    opts = result.config.get("method_options") or {}
    if method == "spcl":
        cl = f"SPCL cl_threshold {opts['cl_threshold']} cl_growth {opts['cl_growth']} normalise {opts['normalise']} score {opts['score']}"
    else:
        cl = "no balance method" if method == "none" else f"method {method} " + " ".join(f"{k} {v}" for k, v in opts.items())
    seconds = sum(r.seconds_per_epoch for r in results) / len(results)
    console.print(
        f"{cl}; {len(result.history)} epochs, {seconds:.2f} s/epoch on {result.device}; "
        + (f"seed {seed_list[0]}" if len(seed_list) == 1 else f"seeds {','.join(map(str, seed_list))}")
        + ("; standardised features" if standardise else "")
        + (f"; {precision} autocast" if precision != "fp32" else "")
        + ("; reference arithmetic" if reference_arithmetic else "")
    )
    if json_out is not None:
        payload = (
            results[0].to_dict()
            if len(results) == 1
            else {"seeds": seed_list, "epoch_base": EPOCH_BASE, **seeds_summary(results), "runs": [r.to_dict() for r in results]}
        )
        atomic_write(json_out, json.dumps(payload, indent=2, default=str))
        console.print(f"wrote {json_out}")


def seeds_summary(results: list) -> dict[str, dict[str, float]]:
    """``{"mean": {...}, "std": {...}}`` of dev/test weighted-F1 and accuracy over the seeds' runs (std: sample)."""
    from spcl_search.stats import mean_std

    keys = ("dev_f1", "test_f1", "dev_acc", "test_acc")
    spread = {k: mean_std([getattr(r, k) for r in results]) for k in keys}
    return {"mean": {k: float(v[0] or 0.0) for k, v in spread.items()}, "std": {k: v[1] or 0.0 for k, v in spread.items()}}


def _form(backbone: str, variant: str) -> type[backbones.Form]:
    """The registered form class; ConfigError naming the option and its choices otherwise."""
    try:
        return backbones.lookup(backbone, variant)
    except backbones.UnknownForm as exc:
        if exc.field == "variant":
            raise ConfigError(f"--variant {variant!r}: choose one of {', '.join(exc.choices)}") from None
        raise ConfigError(f"--backbone {backbone}: {exc}") from None
    except ValueError as exc:  # a plugin module that cannot be imported
        raise ConfigError(str(exc)) from None


def _seed_list(seeds: str | None, seed: int) -> list[int]:
    """``--seeds 0,1,2`` as a list (else ``[--seed]``); one-line errors naming the option."""
    if seeds is None:
        if seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {seed}")
        return [seed]
    try:
        out = [int(x) for x in seeds.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: give a comma list of integers such as 0,1,2") from None
    if not out or any(x < 0 for x in out) or len(set(out)) != len(out):
        raise ConfigError(f"--seeds {seeds!r}: give distinct integers >= 0 such as 0,1,2")
    return out


def _model_options(items: list[str]) -> dict[str, object]:
    """``["dropout=0.3", "hidden=128"]`` -> ``{"dropout": 0.3, "hidden": 128}`` (JSON values: numbers, true/false,
    strings); one-line errors naming the option."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-option {item!r}: use KEY=VALUE, e.g. dropout=0.3")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _chosen_method(method: str | None, no_cl: bool) -> str:
    """The method asked for: ``--method``, ``none`` for ``--no-cl`` (an alias; with another method an error)."""
    if no_cl and method not in (None, "none"):
        raise ConfigError(f"--no-cl means --method none; drop one of --no-cl and --method {method}")
    chosen = "none" if no_cl else (method or registry.DEFAULT_METHOD)
    return registry.check_method(chosen)


def _spcl_aliases(method: str, given: dict[str, Any]) -> dict[str, Any]:
    """The SPCL flags given (``--cl-threshold`` ...) as spcl's method options; with another method an error."""
    flags = {
        "cl_threshold": "--cl-threshold",
        "cl_growth": "--cl-growth",
        "normalise": "--cl-normalise",
        "score": "--cl-score",
        "cap": "--cl-cap",
    }
    out = {k: v for k, v in given.items() if v is not None}
    if out and method != "spcl":
        raise ConfigError(f"{flags[next(iter(out))]} is an option of --method spcl, not of --method {method}")
    return out


def _method_options(items: list[str]) -> dict[str, Any]:
    """``["alpha=0.5", "smooth=true"]`` -> ``{"alpha": 0.5, "smooth": True}`` (one-line errors naming the option)."""
    from spcl_search.schema.method_options import parse_option

    return dict(parse_option(item) for item in items)
