"""The order table of ``benchmarks/calibrate_synthetic.py --work``: each method's MRR@20 and P@20
on each calibrated dataset and scale, read from the results stores of book builds and of
``--train`` folders, with the machine and commit each row comes from."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srs_core import experiments as ex  # noqa: E402
from srs_core.calibration import CALIBRATION_DATA as DATASETS  # noqa: E402
from srs_core.publish.book import load_profile  # noqa: E402
from srs_core.training.runtime import machine_name  # noqa: E402


def machine() -> str:
    """The machine a row was measured on: the CPU's model and the cores this process may use."""
    return f"{machine_name('cpu')}, {len(os.sched_getaffinity(0))} cores"


COMMIT_FILE = "trained-at-commit.txt"  # what --train leaves in a folder outside any checkout


def commit(where: Path = ROOT) -> str:
    """The commit of the checkout that holds ``where`` (a build's work folder: the build's own
    commit), or, for a folder ``--train`` wrote outside a checkout, the commit it trained with."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True)
    if out.stdout.strip():
        return out.stdout.strip()
    mark = Path(where) / COMMIT_FILE
    return mark.read_text().strip() if mark.is_file() else "unknown"


def method(row) -> str | None:
    """The order table's name for a stored run (a baseline, or a model with cross-entropy or the
    recommended loss); None for a run the table does not show."""
    if row.kind == "baseline":
        return row.model
    if row.loss == "ce" and not row.l2:
        return f"{row.model}, cross-entropy"
    if (row.loss == "sampled_softmax" and row.l2 and row.score_scale == 10.0 and row.sampling == "popularity"
            and row.logq == "single"):
        return f"{row.model}, recommended loss"
    return None


def order_table(works: list[Path]) -> pd.DataFrame:
    """One row per dataset and method, each taken from the first of ``works``
    (book builds' work folders) that has runs of it; ``commit`` names that
    build's checkout."""
    parts, seen = [], set()
    for work in works:
        runs = ex.all_results(work)
        runs = runs[runs.dataset.isin(DATASETS)].copy()
        runs["method"] = [method(r) for r in runs.itertuples()]
        runs = runs.dropna(subset=["method"])
        runs["scale"] = runs.dataset.map({name: data_scale(work, name) for name in runs.dataset.unique()})
        key = list(zip(runs.dataset, runs.scale, runs.method))
        runs = runs[[k not in seen for k in key]]
        seen |= set(key)
        parts.append(runs.assign(commit=commit(work)))
    runs = pd.concat(parts)
    if runs.empty:
        raise SystemExit(f"no runs on {', '.join(DATASETS)} in {', '.join(map(str, works))}: "
                         "build the default book with the real split first")
    table = (runs.groupby(["dataset", "scale", "method"])
             .agg(mrr_at_20=("mrr_at_20", "mean"), p_at_20=("p_at_20", "mean"), seeds=("seed", "nunique"),
                  epochs_run=("epochs_run", "max"), n_items=("n_items", "first"), commit=("commit", "first"))
             .reset_index())
    vsknn = table[table.method == "vsknn"].set_index(["dataset", "scale"]).mrr_at_20
    table["ratio_to_vsknn"] = table.mrr_at_20 / pd.Series(list(zip(table.dataset, table.scale)), index=table.index).map(vsknn)
    table["data"] = table.dataset.map(DATASETS)
    return table.assign(machine=machine(), date=dt.date.today().isoformat())


def data_scale(work: Path, name: str) -> float:
    """The scale dataset ``name`` was made at in the work folder ``work`` (its ``recipe.json``):
    a synthetic preset's scale, the share kept of a published split, 1 for a whole real file."""
    recipe = ex.dataset_dir(work, name) / "recipe.json"
    scale = json.loads(recipe.read_text()).get("scale") if recipe.is_file() else None
    return float(scale) if scale is not None else 1.0


def with_scales(before: pd.DataFrame) -> pd.DataFrame:
    """An earlier ``calibration.csv`` with its ``scale`` column: a file from before the column
    existed was measured at the default profile's scales (whole real files at 1)."""
    if "scale" in before:
        return before
    scales = {k.replace("/", "-"): v for k, v in (load_profile("default").get("scale") or {}).items()}
    return before.assign(scale=before.dataset.map(lambda name: float(scales.get(name, 1.0))))


def with_kept(table: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """``table`` and the rows of ``before`` (an earlier ``calibration.csv``) for the datasets and
    scales ``table`` lacks, whole, so that each one's ratios to V-SKNN come from one build."""
    have = set(zip(table.dataset, table.scale))
    kept = before[[k not in have for k in zip(before.dataset, before.scale)]]
    print("kept from the earlier table: "
          + (", ".join(f"{d} at scale {s:g}" for d, s in sorted(set(zip(kept.dataset, kept.scale)))) or "nothing"))
    return pd.concat([table, kept[table.columns]]).sort_values(["dataset", "scale", "method"], ignore_index=True)
