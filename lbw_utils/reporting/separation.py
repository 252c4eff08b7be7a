"""The answer of notebook 09 in words: does any row separate the classes better than the strong baseline at equal
accuracy, by how much, at what compute, counted at the baseline's inference cost and at any cost
(:func:`lbw_utils.studies.representation.separation_summary`)."""

from __future__ import annotations

import math

import pandas as pd

from lbw_utils.reporting.display import row_name

COST_WORDS = {"one network": "at the baseline's inference cost (one network of its size)",
              "any": "at any inference cost (ensembles included)"}


def _compute_words(row) -> str:
    parts = []
    if not math.isnan(row.epoch_images_vs_baseline):
        parts.append(f"{row.epoch_images_vs_baseline:.1f}x the baseline's training images x epochs")
    if not math.isnan(row.train_seconds_vs_baseline):
        parts.append(f"{row.train_seconds_vs_baseline:.1f}x its training seconds")
    parts.append(f"{row.networks_at_inference:.0f} network(s) at inference")
    return ", ".join(parts)


def describe_separation(summary: pd.DataFrame, seeds: int) -> str:
    """Markdown: per inference cost, the rows whose re-decision frontier lies above the baseline's (every compared
    accuracy level's paired 95 % interval above 0), each with its largest gap and its compute; or that none does."""
    if summary.empty:
        return "No trained row has a re-decision frontier to compare with the baseline's.\n"
    lines = []
    for cost, rows in summary.groupby("cost", sort=False):
        above = rows[rows["above"]]
        header = f"{COST_WORDS.get(cost, cost).capitalize()}, {len(rows)} rows, {seeds} seeds:"
        if above.empty:
            best = rows.loc[rows["largest"].idxmax()] if rows["largest"].notna().any() else None
            closest = ("" if best is None
                       else f" The largest mean gap at any level is {row_name(best.method)}'s, "
                       f"{100 * best.largest:+.1f} ± {100 * best.largest_ci:.1f} points at "
                       f"{100 * best.largest_level:.2f} % accuracy.")
            lines.append(f"- {header} no row's curve lies above the baseline's re-decision frontier.{closest}")
            continue
        found = "; ".join(
            f"{row_name(row.method)}, by {100 * row.smallest:+.1f} to {100 * row.largest:+.1f} points of worst-class "
            f"TPR over {row.levels_compared} accuracy levels (largest {100 * row.largest:+.1f} ± {100 * row.largest_ci:.1f} at "
            f"{100 * row.largest_level:.2f} %), at {_compute_words(row)}" for row in above.itertuples(index=False))
        lines.append(f"- {header} above the baseline's re-decision frontier: {found}.")
    return "\n".join(lines) + "\n"


def formatted_separation(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary for a page: one row per (cost, method), gaps in points, compute as ratios to the baseline."""
    return pd.DataFrame({
        "counted at": summary["cost"], "method": [row_name(label) for label in summary["method"]],
        "verdict": summary["verdict"],
        "largest gap (pts)": [f"{100 * d:+.1f} ± {100 * c:.1f}" if not math.isnan(d) else "-"
                              for d, c in zip(summary["largest"], summary["largest_ci"])],
        "smallest gap (pts)": [f"{100 * d:+.1f}" if not math.isnan(d) else "-" for d in summary["smallest"]],
        "training images x epochs (x baseline)": [f"{v:.1f}" for v in summary["epoch_images_vs_baseline"]],
        "training seconds (x baseline)": [f"{v:.1f}" for v in summary["train_seconds_vs_baseline"]],
        "networks at inference": [f"{v:.0f}" for v in summary["networks_at_inference"]],
    })
