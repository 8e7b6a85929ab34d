"""The ``cleanlab-ng`` command: parse options, call :func:`cleanlab_ng.clean`, render."""

from __future__ import annotations

import atexit
import gc
import json
import logging
import sys
import traceback
import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.logging import RichHandler

from cleanlab_ng import __version__
from cleanlab_ng.choices import (
    DETECTOR_NAMES,
    EXPORT_MODES,
    FIX_MODES,
    MERGE_RULES,
    RECOV_METRICS,
    RECOV_RULES,
    TABLE_FEATURES,
)
from cleanlab_ng.errors import CleanlabNgError

from .exit_codes import EPILOG, ExitCode
from .render import ProgressView, flagged_table, summary_table


class DetectorList(click.ParamType):
    """``bmm,late_stopping`` -> a list of registered detector names."""

    name = "names"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        from cleanlab_ng.detectors import parse_detectors  # the registry loads torch

        try:
            return parse_detectors(value)
        except CleanlabNgError as exc:
            self.fail(str(exc), param, ctx)


@click.group(epilog=EPILOG)
@click.version_option(__version__, prog_name="cleanlab-ng")
def cli():
    """Find the mislabeled samples in a dataset and hand back a clean one."""
    # At exit the interpreter's last garbage collections walk every object that torch,
    # scipy and pandas created on import: about a second of a short run, for memory the
    # OS takes back anyway. Frozen objects are skipped; atexit still runs before.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


@cli.command(epilog=EPILOG)
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="Output folder (created; DATASET and OUT may not lie inside each other).")
@click.option("--labels", type=click.Path(path_type=Path),
              help="Labels file for images or an .npy matrix [default: labels.csv beside it].")
@click.option("--label-column", default="label", show_default=True)
@click.option("--path-column", default="path", show_default=True,
              help="Column of the labels file with image paths.")
@click.option("--id-column", default=None,
              help="Table column used as sample id [default: row number].")
@click.option("--text-column", default=None,
              help="Table column of free text: embed it (TF-IDF + SVD) instead of using "
                   "the columns as features.")
@click.option("--detectors", type=DetectorList(), default=None,
              help=f"Comma-separated detectors [default: all: {','.join(DETECTOR_NAMES)}].")
@click.option("--merge", type=click.Choice(MERGE_RULES), default="jury", show_default=True,
              help="How the detectors' scores are combined: rank mean weighted by the overlap "
                   "of each detector's top with that of the neighbours' label disagreement, "
                   "with that disagreement's own ranks as one more member (jury) or without "
                   "(referee); weighted by the overlap with the other detectors' tops "
                   "(overlap) or by full-ranking agreement (agreement); plain rank mean "
                   "(rank_mean); or majority vote of the detectors' flags (vote).")
@click.option("--noise-rate", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Flag this fraction instead of the estimated number of wrong labels.")
@click.option("--backbone", default=None,
              help="timm model for image features [default: tf_efficientnet_lite0].")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Weights file for --backbone.")
@click.option("--image-size", type=click.IntRange(8), default=224, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Embedding cache [default: OUT/.cleanlab-ng/cache].")
@click.option("--table-features", type=click.Choice(TABLE_FEATURES), default="auto",
              show_default=True,
              help="Tables: the standardised columns (linear), RBF kernel features of them, "
                   "or the kernel features where they predict the labels better (auto).")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default="linear",
              show_default=True, help="Proxy head of the full-data run.")
@click.option("--finetune", is_flag=True,
              help="Images: train the backbone end to end for the proxy run (meant for a GPU).")
@click.option("--epochs", type=click.IntRange(2), default=40, show_default=True)
@click.option("--folds", type=click.IntRange(2), default=5, show_default=True)
@click.option("--late-stopping-rounds", type=click.IntRange(0), default=0, show_default=True,
              help="Rounds of multi-round Late Stopping (0: single-run FkL).")
@click.option("--recov-runs", type=click.IntRange(1), default=None,
              help="Repeated K-fold runs for recov [default: until the ranking is stable].")
@click.option("--recov-rule", type=click.Choice(RECOV_RULES), default="structure",
              show_default=True,
              help="How recov flags: the estimated number of wrong labels (count), per cell of "
                   "the confident joint (joint), the one that suits the noise (structure), the "
                   "paper's three rules, or their auto choice.")
@click.option("--recov-metric", type=click.Choice(RECOV_METRICS), default="class_margin",
              show_default=True,
              help="Worst fold per class by margin (ours) or per repeat by accuracy (paper).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads [default: the cores available].")
@click.option("--export", "export_mode", type=click.Choice(EXPORT_MODES), default="hardlink",
              show_default=True, help="How cleaned/ gets the kept files.")
@click.option("--fix", type=click.Choice(FIX_MODES), default="remove", show_default=True,
              help="cleaned/ leaves out every flagged sample (remove); gives the "
                   "mislabeled ones their suggested label where their nearest neighbours "
                   "back it and leaves out the rest (relabel); or keeps every sample and adds "
                   "is_noisy, issue, noise_score and suggested_label to the table or labels "
                   "file (mark).")
@click.option("--overwrite", is_flag=True,
              help="Write into a non-empty OUT not made by cleanlab-ng (deletes nothing).")
@click.option("--fail-above", type=click.FloatRange(0, 1), default=None,
              help="Exit 3 when the estimated noise rate is above RATE.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json to stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Only errors on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def clean(dataset, out, detectors, export_mode, fail_above, as_json, quiet, debug, **options):
    """Write a noise report and a cleaned copy of DATASET into OUT.

    DATASET is a folder of class folders, images with labels.csv, a CSV/TSV/Parquet table, or
    an .npy embedding matrix with labels.csv.
    """
    console = Console(stderr=True, quiet=quiet)
    _configure_logging(console, quiet)
    try:
        from cleanlab_ng import clean as run_clean  # here, not at the top: torch loads

        with warnings.catch_warnings(), ProgressView(console) as progress:
            warnings.showwarning = _log_warning
            result = run_clean(dataset, out, detectors=detectors, export=export_mode,
                               on_progress=progress, **options)
    except CleanlabNgError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 -- the one boundary for internal errors
        click.echo(f"internal error, please report: {type(exc).__name__}: {exc}", err=True)
        if debug:
            traceback.print_exc()
        else:
            click.echo("(run again with --debug for the traceback)", err=True)
        sys.exit(ExitCode.INTERNAL_ERROR)
    top = flagged_table(result.report, str(result.out))
    if top is not None:
        console.print(top)
    console.print(summary_table(result.summary, str(result.out)))
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
    if fail_above is not None and result.summary["estimated_noise_rate"] > fail_above:
        if not quiet:
            click.echo(f"estimated noise rate {result.summary['estimated_noise_rate']:.1%} "
                       f"is above --fail-above {fail_above:.1%}", err=True)
        sys.exit(ExitCode.NOISE_ABOVE_THRESHOLD)


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # a library's warning is one log line, not a file path and a source line on the terminal
    logging.getLogger("cleanlab_ng").warning("%s (%s)", message, category.__name__)


def _configure_logging(console: Console, quiet: bool) -> None:
    logger = logging.getLogger("cleanlab_ng")
    logger.handlers[:] = [RichHandler(console=console, show_time=False, show_path=False)]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
