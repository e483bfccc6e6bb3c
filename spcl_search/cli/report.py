"""``spcl-search report``, ``dashboard`` and ``compare``: look at studies."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spcl_search.cli import app
from spcl_search.errors import ConfigError
from spcl_search.stats import pm

console = Console()

STORAGE_HELP = "Study database URL (sqlite:///FILE or postgresql://USER@HOST/DB) [default: $SPCL_SEARCH_STORAGE, else ./spcl_search.db]."
IMAGE_FORMATS = ("png", "svg", "pdf", "jpeg", "webp")


@app.command()
def report(
    study: Annotated[str, typer.Option("--study", "-s", help="Study name.")],
    storage: Annotated[str | None, typer.Option("--storage", help=STORAGE_HELP)] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The page: a .html file, or a folder for <study>.html (images go to <study>/ beside it).")
    ] = Path("reports"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="html, or png (svg, pdf) to also write each figure as an image.")] = "html",
    png: Annotated[bool, typer.Option("--png", help="Same as --format png.")] = False,
    importance: Annotated[str, typer.Option("--importance", help="Importance evaluator: ped-anova or fanova.")] = "ped-anova",
    track: Annotated[
        str | None,
        typer.Option("--track", help="Also log the page to the study's MLflow run: mlflow or mlflow:URI (default: the study's --track)."),
    ] = None,
) -> None:
    """Write one self-contained HTML report of a study (plotly embedded, opens offline)."""
    from spcl_search.reports.html import safe_name, write_html
    from spcl_search.reports.importance import make_evaluator
    from spcl_search.reports.report import build_report
    from spcl_search.reports.study import load_study

    make_evaluator(importance)  # a bad --importance fails before any work
    fmt = "png" if png else fmt.lower()
    if fmt != "html" and fmt not in IMAGE_FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose html or one of {', '.join(IMAGE_FORMATS)}")
    if fmt != "html":
        from spcl_search.reports.images import require_browser

        require_browser(fmt)
    from spcl_search.reports.methods import sibling_studies
    from spcl_search.reports.study import open_storage
    from spcl_search.search.confirm import confirmation_of

    opened = open_storage(storage)
    loaded = load_study(study, opened)
    built = build_report(loaded, importance, siblings=sibling_studies(opened, loaded), confirmation=confirmation_of(opened, loaded))
    page = write_html(built, out)
    console.print(f"report: {page}  ({len(built.figures)} figures)", highlight=False)
    _track_report(loaded, track, page)
    if fmt != "html":
        from spcl_search.reports.images import write_images

        folder = page.parent / safe_name(built.info.name)
        paths = write_images(built.figures, folder, fmt)
        console.print(f"{len(paths)} {fmt} images in {folder}", highlight=False)


def _track_report(study: Any, track: str | None, page: Path) -> None:
    """Log the page as an artifact of the study's tracked run (``--track``, else the study's own setting)."""
    from spcl_search.schema.study_info import study_info
    from spcl_search.tracking import parse_target, require, study_tracker

    spec = study_info(study).spec
    target = parse_target(track if track is not None else (spec.track if spec is not None else None))
    if target is None or spec is None:
        return
    require(target)
    if study_tracker(target, spec, study.study_name).log_report(page):
        console.print(f"logged the page to the study's run in {target}", highlight=False)


@app.command()
def dashboard(
    study: Annotated[
        str | None, typer.Option("--study", "-s", help="Open this study's page (default: the list of every study; all are served).")
    ] = None,
    storage: Annotated[str | None, typer.Option("--storage", help=STORAGE_HELP)] = None,
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on (0: any free port).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    push: Annotated[
        bool, typer.Option("--push/--no-push", help="Save the report's figures and tables into the study for the dashboard.")
    ] = True,
    importance: Annotated[
        str, typer.Option("--importance", help="Importance evaluator for pushed figures: ped-anova or fanova.")
    ] = "ped-anova",
    allow_writes: Annotated[
        bool,
        typer.Option("--allow-writes", help="Let the browser change studies (delete, rename, notes, tell trials); read-only otherwise."),
    ] = False,
) -> None:
    """Serve optuna-dashboard on the storage (every study in it) until Ctrl-C (read-only unless --allow-writes)."""
    from spcl_search.reports.dashboard import push_report, start_dashboard
    from spcl_search.reports.report import build_report
    from spcl_search.reports.study import load_study, open_storage
    from spcl_search.search.storage import list_studies

    opened = open_storage(storage)
    studies = [load_study(name, opened) for name in ([study] if study is not None else list_studies(opened))]
    if push:
        from spcl_search.search.confirm import confirmation_of

        for loaded in studies:
            ids = push_report(loaded, build_report(loaded, importance, confirmation=confirmation_of(opened, loaded)))
            console.print(f"pushed {len(ids)} figures and a note to study {loaded.study_name!r}", highlight=False)
    # the dashboard's own importance plot warns on every request of a small study
    warnings.simplefilter("ignore", UserWarning)
    # Ctrl-C stops the server even where the parent ignored SIGINT (an ignored signal is inherited)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    server = start_dashboard(opened, host, port, allow_writes=allow_writes)
    page = server.study_url(studies[0]) if study is not None else server.url
    served = f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}"
    console.print(f"optuna-dashboard: {page}  ({served}; Ctrl-C to stop)", highlight=False)
    server.wait()


@app.command()
def compare(
    studies: Annotated[list[str], typer.Argument(help="Study names (e.g. one per backbone or dataset).")],
    storage: Annotated[str | None, typer.Option("--storage", help=STORAGE_HELP)] = None,
    csv_out: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Also write every table as CSV: the gain table here, the others beside it (NAME-methods.csv, NAME-best.csv)."
        ),
    ] = None,
) -> None:
    """Gain table (tri-modal minus bi-modal, without/with SPCL) and best settings across studies."""
    from spcl_search.outputs import atomic_write
    from spcl_search.reports.csv_tables import csv_text, methods_csv, table_path
    from spcl_search.reports.gain import gain_csv, gain_rows
    from spcl_search.reports.study import load_study, open_storage
    from spcl_search.schema.best import best_settings, paper_table
    from spcl_search.schema.study_info import study_info

    if csv_out is not None and csv_out.is_dir():
        raise ConfigError(f"--csv {csv_out}: is a directory; give a file path")
    opened = open_storage(storage)
    loaded = [load_study(name, opened) for name in studies]
    rows = [row for s in loaded for row in gain_rows(s)]

    def signed(v: float | None) -> str:
        return "-" if v is None else f"{v:+.2f}"

    out = console if console.is_terminal else Console(width=max(console.width, 150))
    table = Table(
        title="Gain (%): tri-modal minus bi-modal, test split; 'without' = no balance method, "
        "'with' = the study's method at its best setting on dev (SPCL's as cl_growth/cl_threshold)"
    )
    for col in (
        "study",
        "backbone",
        "form",
        "dataset",
        "method",
        "versus",
        "w-F1 without",
        "w-F1 with",
        "acc without",
        "acc with",
        "setting",
    ):
        table.add_column(col, justify="left" if col in ("study", "backbone", "form", "dataset", "method", "versus") else "right")
    for r in rows:
        table.add_row(
            r.study,
            r.backbone,
            r.variant,
            r.dataset,
            r.method,
            r.label,
            signed(r.f1_without),
            signed(r.f1_with),
            signed(r.acc_without),
            signed(r.acc_with),
            r.spcl_setting,
        )
    out.print(table)
    missing = [s.study_name for s in loaded if not any(r.study == s.study_name for r in rows)]
    if missing:
        console.print(f"no tri- and bi-modal results yet in: {', '.join(missing)}", highlight=False)

    tables = {"gain": gain_csv(rows)}
    if len({study_info(s).method for s in loaded}) > 1:
        tables["methods"] = methods_csv(_print_methods(out, loaded))

    from spcl_search.search.confirm import confirmation_of

    answers = [b for s in loaded for b in best_settings(s, confirmation_of(opened, s))]
    if answers:
        table = Table(title="Answer per study and modality set (mean ± std over the seeds; differences paired on shared seeds, 95% CI)")
        columns = ("study", "set", "setting", "stage", "dev w-F1", "test w-F1", "vs baseline (dev)", "verdict")
        for col in columns:
            table.add_column(col)
        cells = [
            [a.study, a.modalities, a.setting, a.stage, pm(a.dev_f1, a.dev_f1_std), pm(a.test_f1, a.test_f1_std),
             "-" if a.vs_baseline is None else a.vs_baseline.interval(), a.verdict]
            for a in answers
        ]  # fmt: skip
        for row in cells:
            table.add_row(*map(escape, row))
        out.print(table)
        tables["answers"] = csv_text(columns, cells)
    header, body = paper_table(answers)
    if body:
        tables["best"] = csv_text(header, body)
    if body:
        best = Table(title="Best SPCL settings (cl_growth/cl_threshold), chosen on dev F1")
        for col in header:
            best.add_column(col)
        for line in body:
            best.add_row(*map(escape, line))  # "mmgcn [spcl]" is text, not rich markup
        out.print(best)
    if csv_out is not None:
        written = [atomic_write(table_path(csv_out, name), text) for name, text in tables.items()]
        console.print(f"csv: {', '.join(map(str, written))}", highlight=False)


def _print_methods(out: Console, studies: list[Any]) -> list[Any]:
    """The method view: each balance method's best tri-modal setting, seeds' mean +- std, gain, trial count (its rows)."""
    from spcl_search.reports.methods import method_rows

    table = Table(title="Balance methods (best tri-modal setting on dev; mean ± std over its seeds; * fewer trials than the others)")
    for col in ("backbone", "form", "dataset", "method", "trials", "setting", "seeds", "dev w-F1", "test w-F1", "gain dev", "gain test"):
        table.add_column(col, justify="left" if col in ("backbone", "form", "dataset", "method", "setting") else "right")
    rows = method_rows(studies)
    for r in rows:
        table.add_row(
            r.backbone, r.variant, r.dataset, r.method + (" *" if r.flagged else ""), str(r.n_trials), r.setting, str(r.n_seeds),
            pm(r.dev_f1, r.dev_f1_std), pm(r.test_f1, r.test_f1_std),
            "-" if r.gain is None else f"{r.gain:+.2f}", "-" if r.gain_test is None else f"{r.gain_test:+.2f}",
        )  # fmt: skip
    out.print(table)
    return rows
