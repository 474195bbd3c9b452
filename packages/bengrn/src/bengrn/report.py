"""Tables and figures from a results folder written by :func:`bengrn.runner.run_benchmark`.

* ``results.csv`` / ``results.md``: one row per method x task x unit x variant (metrics, inference
  time, peak memory, status and error, ``genes_covered``: the fraction of the expression set's
  genes the network has, the rest scored as no prediction; ``n_truth_edges_outside_genes``: truth
  edges left out because a gene is outside the expression set);
* ``figures/pr_<task>.png``: precision-recall curves, one panel per unit x variant, every method on
  it, the random precision as a dashed line;
* ``figures/summary.png``: heat maps of AUPRC ratio (the Davis & Goadrich AUPRC of
  :mod:`bengrn.metrics` over the random precision) and EPR (rows: task / unit / variant,
  columns: methods; failed runs left blank, degenerate ones shown with their near-1 values).

Every file is written atomically (:mod:`grnndata.atomic`): a killed report leaves the previous
version of each file or the new one, never a truncated file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grnndata.atomic import atomic_path, write_text

__all__ = ["collect_results", "write_report"]

log = logging.getLogger(__name__)

_TABLE_METRICS = (
    "auprc",
    "ap",
    "epr",
    "auprc_ratio",
    "auprc_trapezoid",
    "precision",
    "recall",
    "odds_ratio",
    "random_precision",
)
#: Counts shown when some row has them: true edges scored, and those left out of the universe.
_TABLE_COUNTS = ("n_true_edges", "n_truth_edges_outside_genes")


def _runs(out: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((out / "runs").rglob("*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping unreadable run file %s: %s", path, err)
    return records


def collect_results(out: str | os.PathLike) -> pd.DataFrame:
    """The tidy results table of a results folder (one row per method x task x unit x variant)."""
    rows = []
    for rec in _runs(Path(out)):
        base = {
            "method": rec.get("method"),
            "task": rec.get("task"),
            "unit": rec.get("unit"),
            "status": rec.get("status"),
            "infer_seconds": rec.get("infer_seconds"),
            "peak_rss_mb": rec.get("peak_rss_mb"),
            "error": rec.get("error", ""),
            "params": json.dumps(rec.get("params") or {}, sort_keys=True),
            "genes_covered": (rec.get("coverage") or {}).get("genes_covered"),
        }
        variants = rec.get("variants") or [{"variant": ""}]
        for v in variants:
            row = dict(base, variant=v.get("variant", ""))
            row.update(v.get("metrics", {}))
            row["n_genes_overlap"] = v.get("n_genes_overlap")
            row["n_true_edges"] = v.get("n_true_edges")
            row["universe"] = v.get("universe", "")
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["task", "unit", "variant", "method"], kind="stable").reset_index(
        drop=True
    )


def _markdown(frame: pd.DataFrame) -> str:
    cols = [
        "task",
        "unit",
        "variant",
        "method",
        "status",
        *[m for m in _TABLE_METRICS if m in frame],
    ]
    cols += [c for c in _TABLE_COUNTS if c in frame and frame[c].fillna(0).astype(float).any()]
    if "genes_covered" in frame and (frame["genes_covered"].fillna(1) < 1).any():
        cols.append("genes_covered")
    cols += [c for c in ("infer_seconds", "peak_rss_mb", "error") if c in frame]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame[cols].iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                cells.append("" if math.isnan(v) else f"{v:.4g}")
            else:
                cells.append(str(v).replace("|", "/").replace("\n", " ")[:200])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_SCORED = ("ok", "degenerate")


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, "png") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _pr_figures(out: Path, records: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    by_task: dict[str, dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]] = {}
    for rec in records:
        if rec.get("status") not in _SCORED:
            continue
        for v in rec.get("variants", []):
            if v.get("curve") is None:
                continue
            key = (rec["unit"], v["variant"])
            by_task.setdefault(rec["task"], {}).setdefault(key, []).append((rec["method"], v))
    paths = []
    for task, panels in sorted(by_task.items()):
        keys = sorted(panels)
        ncols = min(3, len(keys))
        nrows = math.ceil(len(keys) / ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False, layout="constrained"
        )
        for ax, key in zip(axes.ravel(), keys):
            random_precision = None
            for method, v in sorted(panels[key], key=lambda mv: mv[0]):
                curve = v["curve"]
                m = v["metrics"]
                ax.step(
                    [0.0, *curve["recall"]],
                    [curve["precision"][0] if curve["precision"] else 0.0, *curve["precision"]],
                    where="pre",
                    label=f"{method} (AUPRC {m['auprc']:.3f})",
                )
                random_precision = m["random_precision"]
            if random_precision is not None:
                ax.axhline(random_precision, color="grey", ls="--", lw=1, label="random")
            unit, variant = key
            ax.set_title(
                variant if unit in ("default", variant) else f"{unit} / {variant}", fontsize=9
            )
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=6, loc="upper right")
        for ax in axes.ravel()[len(keys) :]:
            ax.axis("off")
        fig.suptitle(f"{task}: precision-recall", fontsize=11)
        path = out / "figures" / f"pr_{task}.png"
        _save(fig, path)
        paths.append(path)
    return paths


def _summary_figure(out: Path, frame: pd.DataFrame) -> Path | None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if "auprc_ratio" not in frame or "epr" not in frame:
        return None
    scored = frame[frame["status"].isin(_SCORED)].copy()
    if scored.empty:
        return None
    scored["row"] = [
        f"{t}: {v}" if u in ("default", v) else f"{t}: {u}/{v}"
        for t, u, v in zip(scored["task"], scored["unit"], scored["variant"])
    ]
    methods = sorted(frame["method"].dropna().unique())
    metrics = [m for m in ("auprc_ratio", "epr") if scored[m].notna().any()]
    if not metrics:
        return None
    rows = list(dict.fromkeys(scored.loc[scored[metrics].notna().any(axis=1), "row"]))
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(2.5 + 1.4 * len(methods) * len(metrics), 1.5 + 0.32 * len(rows)),
        squeeze=False,
        layout="constrained",
    )
    for ax, metric in zip(axes.ravel(), metrics):
        table = scored.pivot_table(index="row", columns="method", values=metric, aggfunc="mean")
        table = table.reindex(index=rows, columns=methods)
        values = table.to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.log2(np.where(values > 0, values, np.nan))
        bound = np.nanmax(np.abs(shown)) if np.isfinite(shown).any() else 1.0
        image = ax.imshow(shown, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        ax.set_title(f"{metric} (colour: log2; 1 = random)", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.6)
    path = out / "figures" / "summary.png"
    _save(fig, path)
    return path


def write_report(out: str | os.PathLike) -> dict[str, Any]:
    """(Re)write ``results.csv``, ``results.md`` and the figures of a results folder.

    Returns the written paths: ``{"csv": ..., "markdown": ..., "figures": [...]}``.
    """
    out = Path(out)
    if not (out / "runs").is_dir():
        raise FileNotFoundError(
            f"{out} holds no benchmark runs (no {out / 'runs'} folder); run `bengrn run ... --out {out}` first"
        )
    frame = collect_results(out)
    csv_path = out / "results.csv"
    write_text(csv_path, frame.to_csv(index=False), "csv")
    md_path = out / "results.md"
    header = (
        "# BenGRN results\n\nOne row per method x task x unit x variant; metrics as in "
        "`bengrn.metrics` (`auprc`: Davis & Goadrich interpolation; `auprc_trapezoid`: the "
        "optimistic trapezoid of earlier tables, for comparison only). Every network is scored "
        "over the whole expression set it was inferred from: `genes_covered` (shown when a "
        "network lacks genes) is the fraction of its genes the network has, the others scored as "
        "no prediction; `n_truth_edges_outside_genes` counts truth edges left out because a gene "
        "is outside the expression set.\n\n"
    )
    write_text(md_path, header + (_markdown(frame) if not frame.empty else "no runs\n"))
    records = _runs(out)
    figures = _pr_figures(out, records)
    summary = _summary_figure(out, frame) if not frame.empty else None
    if summary is not None:
        figures.append(summary)
    log.info("report: %s, %s and %d figures in %s", csv_path.name, md_path.name, len(figures), out)
    return {"csv": csv_path, "markdown": md_path, "figures": figures}
