"""``spcl-search data``: inspect a feature file (``info``) and write the synthetic dataset (``synth``)."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from spcl_search.cli import app
from spcl_search.errors import ConfigError

console = Console()

data_app = typer.Typer(
    help="Inspect ERC feature files and write the synthetic dataset.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")


@data_app.command("info")
def info(
    source: str = typer.Argument(
        ..., metavar="PATH|synthetic", help="Feature pickle (SPCL dict or DialogueGCN/MMGCN/MM-DFN tuple) or 'synthetic'."
    ),
    dev_fraction: float = typer.Option(0.1, help="Dev fraction of the train dialogues when the file has no validVid."),
    dev_seed: int = typer.Option(0, help="Seed of the random dev split."),
    valid_vid: bool = typer.Option(True, "--valid-vid/--no-valid-vid", help="Use the file's validVid as the dev split when it has one."),
    cache_dir: Optional[Path] = typer.Option(
        None, help="Cache of converted features (default: $SPCL_SEARCH_CACHE or ~/.cache/spcl-search)."
    ),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Read and write the converted-feature cache."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON instead of tables."),
) -> None:
    """Show counts per split and class, feature dims, speakers, the dev split and which features are surrogate."""
    from spcl_search.data.info import describe
    from spcl_search.data.load import load_dataset

    dataset = load_dataset(
        source, dev_fraction=dev_fraction, dev_seed=dev_seed, cache_dir=cache_dir, use_valid_vid=valid_vid, use_cache=cache
    )
    summary = describe(dataset)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(..., metavar="OUT.pkl", help="Where to write the synthetic dataset (SPCL dict pickle)."),
    n_dialogues: int = typer.Option(120, min=2, help="Number of dialogues (80% train, 20% test)."),
    seed: int = typer.Option(0, help="Random seed; the same seed writes the same data."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
) -> None:
    """Write the fully synthetic ERC dataset as an SPCL pickle (all three modalities are synthetic)."""
    from spcl_search.data.synthetic import SYNTHETIC_DIMS, make_synthetic

    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass --force to overwrite it")
    data = make_synthetic(n_dialogues=n_dialogues, seed=seed)
    _atomic_pickle(data, out)
    n_utt = sum(len(v) for v in data["label"].values())
    dims = ", ".join(f"{k} {d}" for k, d in SYNTHETIC_DIMS.items())
    console.print(
        f"wrote [bold]{out}[/]: {n_dialogues} dialogues ({len(data['trainVid'])} train / {len(data['testVid'])} test), "
        f"{n_utt:,} utterances, dims {dims}; every modality is synthetic (seed {seed})",
        highlight=False,
    )


def _atomic_pickle(obj: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            pickle.dump(obj, f, protocol=4)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_FORMATS = {"spcl": "SPCL dict pickle", "dialoguegcn": "DialogueGCN/MMGCN tuple pickle"}


def _print_summary(s: dict[str, Any]) -> None:
    cache = s["cache"]
    if cache is None:
        how = "made in memory"
    elif cache["hit"]:
        how = "read from the cache"
    else:
        how = "converted from the pickle" + (" and cached" if cache["path"] else "")
    fmt = _FORMATS.get(s["format"], s["format"])
    console.print(f"[bold]{s['name']}[/]  {s['source']}  ({fmt})", highlight=False)
    if s["sha256"]:
        console.print(f"sha256 {s['sha256']}", highlight=False)
    console.print(f"loaded in {s['load_seconds']:.2f} s, {how}", highlight=False)

    counts = Table(title="Counts per split")
    counts.add_column("")
    for split in s["splits"]:
        counts.add_column(split, justify="right", style="bold" if split == "total" else None)
    splits = list(s["splits"].values())
    counts.add_row("dialogues", *(f"{row['dialogues']:,}" for row in splits))
    counts.add_row("utterances", *(f"{row['utterances']:,}" for row in splits), end_section=True)
    for i, c in enumerate(s["classes"]):
        counts.add_row(f"{i} {c}", *(f"{row['classes'][i]:,}" for row in splits))
    console.print(counts)

    modalities = Table(title="Modalities")
    for col in ("modality", "present", "dim", "features"):
        modalities.add_column(col, justify="right" if col == "dim" else "left")
    for m, row in s["modalities"].items():
        provenance = row["provenance"]
        if row["surrogate"]:
            kind = "SURROGATE" + (f" ({provenance})" if "surrogate" not in provenance.lower() else "")
        else:
            kind = provenance or "not stated in the file"
        present = row["present"]
        modalities.add_row(f"{m} ({row['name']})", "yes" if present else "no", str(row["dim"]) if present else "-",
                           kind if present else "-")
    console.print(modalities)

    dev = s["dev_split"]
    if dev.get("method") == "validVid":
        dev_text = f"the file's validVid ({dev['n_dialogues']} dialogues, {100 * dev['fraction']:.1f}% of train)"
    else:
        dev_text = f"random {100 * dev['fraction']:g}% of train (seed {dev['seed']}, {dev['n_dialogues']} dialogues)"
    console.print(f"speakers: {s['n_speakers']}    dev split: {dev_text}", highlight=False)
    surrogate = [row["name"] for row in s["modalities"].values() if row["present"] and row["surrogate"]]
    if surrogate:
        console.print(
            f"[yellow]note:[/] {', '.join(surrogate)} features are SURROGATE/synthetic: label any figure from them 'surrogate'.",
            highlight=False,
        )
