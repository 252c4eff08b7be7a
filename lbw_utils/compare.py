"""Across-seed comparison of methods: mean and 95 % interval, tables in three formats.

The interval is Student's t interval of the mean over seeds (seeds are the
independent replicates: each reruns the split, the initialisation and the batch
order). With 3 seeds t(0.975, 2) = 4.30, so intervals are honest and wide.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lbw_utils.files import atomic_write_text
from lbw_utils.metrics import tpr_variance_reduction

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]
METRICS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "tpr_std": "TPR std",
    "worst_class_tpr": "worst-class TPR",
    "D": "D = Var(s) - Var(s')",
}


def mean_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % t interval (NaN half-width for a single value)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    quantile = _t975(len(values) - 1)
    return float(values.mean()), float(quantile * values.std(ddof=1) / math.sqrt(len(values)))


def _t975(df: int) -> float:
    """t(0.975, df): the table up to 30, then the Cornish-Fisher expansion (error < 1e-4; 1.96 was 4 % short)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def run_table(records: list[dict], baseline_label: str = "baseline") -> pd.DataFrame:
    """One row per run: test metrics, and D against the baseline run of the same seed."""
    baselines = {(r["dataset"], r["seed"]): r for r in records if r["method_label"] == baseline_label}
    rows = []
    for record in records:
        test = record["test"]
        baseline = baselines.get((record["dataset"], record["seed"]))
        rows.append({
            "dataset": record["dataset"],
            "method": record["method_label"],
            "seed": record["seed"],
            **{key: test[key] for key in METRICS if key != "D"},
            "D": tpr_variance_reduction(baseline["test"]["tpr"], test["tpr"]) if baseline else math.nan,
            "worst_class": test["worst_class"],
            "train_seconds": record.get("train_seconds", math.nan),
        })
    # Named columns even with no records, so method_table can group an empty study.
    columns = ["dataset", "method", "seed", *(key for key in METRICS if key != "D"), "D", "worst_class",
               "train_seconds"]
    return pd.DataFrame(rows, columns=columns)


def method_table(records: list[dict], baseline_label: str = "baseline") -> pd.DataFrame:
    """Per (dataset, method): mean and 95 % half-width of each metric, and the seed count."""
    runs = run_table(records, baseline_label)
    rows = []
    for (dataset, method), group in runs.groupby(["dataset", "method"], sort=False):
        row = {"dataset": dataset, "method": method, "seeds": len(group)}
        for key in METRICS:
            row[key], row[f"{key}_ci"] = mean_interval(group[key])
        row["train_seconds"] = float(group["train_seconds"].mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        baseline_first = table["method"].ne(baseline_label)
        table = table.assign(_order=baseline_first).sort_values(["dataset", "_order"], kind="stable")
        table = table.drop(columns="_order").reset_index(drop=True)
    return table


def _cell(mean: float, half_width: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    if math.isnan(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"


def formatted(table: pd.DataFrame) -> pd.DataFrame:
    """Human-readable cells ``mean ± half-width``, one column per metric."""
    shown = pd.DataFrame({"method": table["method"], "seeds": table["seeds"]})
    for key, title in METRICS.items():
        digits = 4 if key == "D" else 3
        shown[title] = [_cell(m, h, digits) for m, h in zip(table[key], table[f"{key}_ci"])]
    shown["train s"] = [f"{value:.1f}" for value in table["train_seconds"]]
    return shown


def to_markdown(table: pd.DataFrame) -> str:
    shown = formatted(table)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    lines = ["| " + " | ".join(str(value) for value in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *lines]) + "\n"


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A ``booktabs`` table; ``±`` becomes ``$\\pm$``."""
    shown = formatted(table)
    columns = "l" + "r" * (len(shown.columns) - 1)
    escape = lambda text: str(text).replace("_", r"\_").replace("±", r"$\pm$").replace("%", r"\%")
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
             " & ".join(escape(c) for c in shown.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(escape(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def save_tables(table: pd.DataFrame, stem: str | Path, caption: str = "") -> dict[str, Path]:
    """Write ``stem.md``, ``stem.csv`` (raw numbers) and ``stem.tex``."""
    stem = Path(stem)
    paths = {"md": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv"), "tex": stem.with_suffix(".tex")}
    atomic_write_text(paths["md"], to_markdown(table))
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    atomic_write_text(paths["tex"], to_latex(table, caption))
    return paths


def tpr_by_seed(records: list[dict], method: str, split: str = "test") -> tuple[list[int], np.ndarray]:
    """Seeds and the ``[seeds, C]`` TPR matrix of one method, ordered by seed."""
    chosen = sorted((r for r in records if r["method_label"] == method), key=lambda r: r["seed"])
    return [r["seed"] for r in chosen], np.array([r[split]["tpr"] for r in chosen], dtype=float)


def paired_tpr_change(records: list[dict], method: str, baseline: str = "baseline") -> pd.DataFrame:
    """Per class: mean change of test TPR against the same seed's baseline, its 95 % interval,
    and the baseline's own seed-to-seed standard deviation (the noise to beat)."""
    treated = dict(zip(*tpr_by_seed(records, method)))
    base = dict(zip(*tpr_by_seed(records, baseline)))
    common = sorted(set(treated) & set(base))
    if not common:
        raise ValueError(f"no seed has both a '{method}' and a '{baseline}' record")
    change = np.array([treated[seed] - base[seed] for seed in common])
    base_rows = np.array(list(base.values()))
    classes = next(r["classes"] for r in records if r["method_label"] == method)
    stats = [mean_interval(change[:, c]) for c in range(change.shape[1])]
    noise = base_rows.std(0, ddof=1) if len(base_rows) > 1 else np.full(base_rows.shape[1], math.nan)
    return pd.DataFrame({"class": classes, "mean change": [m for m, _ in stats],
                         "95% CI ±": [h for _, h in stats], "baseline seed std": noise, "seeds": len(common)})
