"""Terminal output: rich progress bars and the closing table, all on stderr."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # --help and --version must not load pandas
    import pandas as pd

STAGE_LABELS = {
    "encode": "encode images",
    "train_oof": "train out-of-fold heads",
    "train_recov": "train repeated K-fold heads",
    "train_fastrecov": "train fastReCoV runs",
    "train_dynamics": "train proxy run",
    "train_rounds": "train late-stopping rounds",
    "detect": "run detectors",
}


class ProgressView:
    """A ``(stage, done, total)`` callback that drives one rich Progress, a task per stage.

    A bar is shown only once its stage has run for more than a second, so quick stages
    don't flicker.
    """

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(),
            TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self.tasks: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.tasks:  # started lazily: a run with no slow stage draws nothing at all
            self.progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        self.started.setdefault(stage, now)
        if stage not in self.tasks:
            if now - self.started[stage] < 1 and done < total:
                return
            if not self.tasks:
                self.progress.start()
            self.tasks[stage] = self.progress.add_task(STAGE_LABELS.get(stage, stage),
                                                       total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)


def flagged_table(report: pd.DataFrame, out: str, n: int = 10) -> Table | None:
    """The ``n`` most likely mislabeled samples, with what to do about each; None when
    nothing is flagged. The rest are in ``flagged.csv``, in the same order."""
    from cleanlab_ng.export import flagged_first  # after a run: --help stays light

    flagged = flagged_first(report)
    if flagged.empty:
        return None
    table = Table(title=f"top {min(n, len(flagged))} of {len(flagged)} flagged "
                        f"(all in {out}/flagged.csv)", title_justify="left")
    for column, justify in (("noise_score", "right"), ("sample_id", "left"),
                            ("given", "left"), ("suggested", "left"), ("issue", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for row in flagged.head(n).itertuples(index=False):
        mislabeled = row.issue == "mislabeled"
        suggested = str(row.suggested_label) if mislabeled else "-"
        if mislabeled and not getattr(row, "suggestion_backed", True):
            suggested += " (not backed)"
        table.add_row(f"{row.noise_score:.3f}", escape(str(row.sample_id)),
                      escape(str(row.given_label)), escape(suggested), str(row.issue))
    return table


def summary_table(summary: dict, out: str) -> Table:
    """The closing table: what was found, by whom, and where it was written."""
    table = Table(title=f"cleanlab-ng · {summary['n']} samples · {out}", title_justify="left")
    table.add_column("")
    table.add_column("flagged", justify="right")
    table.add_column("notes")
    proxy = summary["proxy"]
    table.add_row(
        "merged", str(summary["flagged"]),
        f"estimated noise rate {summary['estimated_noise_rate']:.1%} · "
        f"proxy out-of-fold accuracy {proxy['oof_accuracy']:.1%} ({proxy['features']})",
    )
    for name, info in summary["detectors"].items():
        notes = " · ".join(f"{k} {_short(v)}" for k, v in info.items() if k != "flagged")
        if name in summary["baselines"]:
            notes = f"baseline, not merged · {notes}"
        table.add_row(name, str(info["flagged"]), notes)
    if summary["unreadable"]:
        table.add_row("unreadable", str(summary["unreadable"]), "skipped, listed in the report")
    seconds = " · ".join(f"{k} {v:.1f}s" for k, v in summary["seconds"].items())
    relabelled = ""
    if summary.get("fix") == "relabel" and summary.get("export") != "none":
        # the rest of the mislabeled are left out: their neighbours do not back the suggestion
        relabelled = (f", {summary['relabelled']} of {summary['issues']['mislabeled']} "
                      "mislabeled relabelled")
    marked = ", flags in its table" if summary.get("fix") == "mark" else ""
    table.caption = f"kept {summary['kept']} in cleaned/{relabelled}{marked} · {seconds}"
    return table


def _short(value) -> str:
    # diagnostics are full-precision floats in summary.json; three significant digits read
    return f"{value:.3g}" if isinstance(value, float) else str(value)
