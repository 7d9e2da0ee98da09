"""Regression references for the notebooks' trained metrics (nbval's contract).

The rule, for every notebook that trains (also in ``notebooks/README.md``):

* a cell marked ``# NBVAL_CHECK_OUTPUT`` prints only what is the same on
  every CPU and thread count: counts, preprocessing statistics, which runs
  exist, table shapes and column names, and verdict words whose ratio is far
  from its threshold (:func:`settled_word`);
* trained metrics are never printed in such a cell. The same cell calls
  :func:`check_metrics`, which compares them with the committed reference
  ``notebooks/reference/<notebook>.json`` within an absolute tolerance
  (:data:`TOLERANCE`, 0.005 for MRR@20 and P@20) and raises, naming the run,
  the metric and both values, when one is off. What it prints (the number of
  runs compared) is deterministic, so nbval checks it too.

Torch's kernels round differently on AVX2 and AVX-512, on Intel and AMD, and
with one or two threads; a two-epoch run then moves in the 4th decimal
(about 1e-4). A real regression (a wrong learning rate, a dropped L2
normalisation) moves MRR@20 by 0.01 or more, twice the tolerance.

The references are written, never edited by hand, by
``python -m srs_core.publish.book --refresh-committed``, which executes the
committed notebooks with ``SRS_WRITE_REFERENCE=1``. They hold the
notebook's parameters: a notebook run with other parameters (another
profile, a hidden real file) says that its metrics were not compared.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = ROOT / "notebooks" / "reference"
#: Absolute tolerance on a trained metric (MRR@20, P@20), against the reference.
TOLERANCE = 0.005
#: Environment variable that makes :func:`check_metrics` write the reference instead.
WRITE_ENV = "SRS_WRITE_REFERENCE"


def _plain(value):
    """JSON-comparable form of a parameter value (tuples become lists)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _key(row: pd.Series, keys: list[str]) -> str:
    return " | ".join(str(row[k]) for k in keys)


def check_metrics(name: str, runs: pd.DataFrame, keys: list[str], params: dict, *,
                  metrics: tuple[str, ...] = ("mrr_at_20", "p_at_20"), tolerance: float = TOLERANCE,
                  reference_dir: Path | None = None) -> str:
    """Compare ``runs[metrics]`` with the reference of notebook ``name``.

    ``keys`` are the columns that name one row (e.g. dataset, model, seed);
    ``params`` the notebook's parameters, stored with the reference. Returns
    (and prints) one deterministic line; raises ``AssertionError`` listing
    every row whose metric is off by more than ``tolerance``, and every row
    missing on either side."""
    folder = Path(reference_dir) if reference_dir else REFERENCE_DIR
    path = folder / f"{name}.json"
    rows = {_key(r, keys): {m: float(r[m]) for m in metrics} for _, r in runs.iterrows()}
    if len(rows) != len(runs):
        raise ValueError(f"{name}: the columns {keys} do not name each row once; add a column to keys")
    plain = _plain(params)
    if os.environ.get(WRITE_ENV) == "1":
        from srs_core.results import atomic_write_bytes

        # NaN is not valid JSON: "not measured" is stored as null
        as_json = {k: {m: (None if math.isnan(v) else v) for m, v in d.items()} for k, d in rows.items()}
        folder.mkdir(parents=True, exist_ok=True)
        doc = {"notebook": name, "params": plain, "keys": keys, "tolerance": tolerance,
               "rows": dict(sorted(as_json.items()))}
        atomic_write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
    if not path.is_file():
        line = f"{name}: no reference at notebooks/reference/{path.name}; metrics not compared"
        print(line)
        return line
    ref = json.loads(path.read_text())
    if ref["params"] != plain:
        changed = sorted(k for k in set(ref["params"]) | set(plain) if ref["params"].get(k) != plain.get(k))
        line = f"{name}: parameters differ from the reference's ({', '.join(changed)}); metrics not compared"
        print(line)
        return line
    problems = [f"missing run: {k}" for k in ref["rows"] if k not in rows]
    problems += [f"run not in the reference: {k}" for k in rows if k not in ref["rows"]]
    for k, got in rows.items():
        for m, want in ref["rows"].get(k, {}).items():
            g, want = got.get(m, math.nan), (math.nan if want is None else want)
            if math.isnan(g) and math.isnan(want):
                continue  # "not measured" on both sides
            if not (abs(g - want) <= tolerance):
                problems.append(f"{k}: {m} = {g:.4f}, reference {want:.4f} (off by {abs(g - want):.4f} > {tolerance})")
    if problems:
        raise AssertionError(f"{name}: {len(problems)} metric(s) differ from notebooks/reference/{path.name}:\n  "
                             + "\n  ".join(problems))
    line = f"{name}: {len(rows)} runs, {', '.join(metrics)} within {tolerance} of notebooks/reference/{path.name}"
    print(line)
    return line


def settled_word(word: str, ratios, thresholds, margin: float = 0.02) -> str:
    """``word`` when every ratio behind it lies more than ``margin`` (relative)
    from every threshold of its rule, else ``"(near a threshold)"``: a word
    that one CPU's rounding could flip is not part of the regression check."""
    for r in (ratios if hasattr(ratios, "__iter__") else [ratios]):
        if not math.isfinite(float(r)) or any(abs(float(r) - t) <= margin * t for t in thresholds):
            return "(near a threshold)"
    return word
