"""Calibration of the Diginetica-like preset against the real standard split.

Two parts, both written to ``benchmarks/results/``:

* ``--sweep``: the learning rate of the synthetic presets. STAMP with
  cross-entropy trains on the Diginetica-like and MeLi2020-like presets (at
  the default profile's scales) for 4 epochs at each rate; on each preset a
  rate scores its best validation MRR@20 over the best of any rate there, and
  the rate with the highest mean score is the profiles' ``synthetic_lr``
  (``srs_core.pages.chosen_rate``): one rate for every preset, so it is
  chosen on the smallest-data preset as well as on the calibrated one. STAMP
  with the recommended loss runs the same rates on the Diginetica-like preset,
  for reference (the choice does not read it). Writes ``calibration_lr.csv``
  (one row per preset, loss, rate and epoch; about 8 minutes).
* ``--work DIR [DIR ...]``: the order of the methods, read from the results
  store of book builds (``_build/work/default`` after ``make book`` with the
  real split present; with several folders, each method comes from the first
  that has it, e.g. the preset from a new build and the split's costly runs
  from an earlier one, each row naming its build's commit): every baseline, each model with cross-entropy and with the
  recommended loss, on the preset (``diginetica``) and on the real split
  (``diginetica-srgnn``), as mean MRR@20 and P@20 over the seeds stored, and
  each as a ratio to V-SKNN's. Writes ``calibration.csv``; the data chapter
  (``notebooks/00-data.ipynb``) shows it.

    python benchmarks/calibrate_synthetic.py --sweep                 # about 8 minutes
    python benchmarks/calibrate_synthetic.py --work _build/work/default

The generator's knobs themselves (``srs_core/data/synthetic.py``) were chosen
by hand against this table; the sweep and the table are what can be re-run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srs_core import experiments as ex  # noqa: E402
from srs_core.data.synthetic import synthesize  # noqa: E402
from srs_core.publish.book import load_profile  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
RATES = (0.001, 0.003, 0.005, 0.01, 0.02)
DATASETS = {"diginetica": "Diginetica-like preset", "diginetica-srgnn": "real split"}


def machine() -> str:
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {len(__import__('os').sched_getaffinity(0))} cores"


def commit(where: Path = ROOT) -> str:
    """The commit of the checkout that holds ``where`` (a build's work folder: the build's own commit)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


SWEPT = ("diginetica", "meli2020")  # the presets the rate is chosen on


def sweep(epochs: int = 4) -> pd.DataFrame:
    """STAMP at each rate on the presets of ``SWEPT`` (the default profile's scales), with
    cross-entropy, on which the rate is chosen (``pages.chosen_rate``), and, for reference on the
    Diginetica-like preset, with the recommended loss; one row per preset, loss, rate and epoch."""
    from srs_core.pages import chosen_rate
    from srs_core.training import TrainConfig
    from srs_core.training.loop import fit

    profile = load_profile("default")
    losses = {"ce": dict(loss="ce", optimizer="dense", l2=False), "recommended": dict(profile["recommended"])}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in SWEPT:
            scale = profile["scale"][preset]
            data = synthesize(preset, scale, profile.get("seed", 0), Path(tmp) / preset, quiet=True)
            for name, kw in losses.items():
                if name != "ce" and preset != "diginetica":
                    continue
                for lr in RATES:
                    cfg = TrainConfig(data=str(data), model="stamp", epochs=epochs, batch_size=profile["batch_size"],
                                      dim=profile["dim"], lr=lr, seed=0, **kw)
                    res = fit(cfg, Path(tmp) / f"run-{preset}-{name}-{lr}", quiet=True)
                    for e in res["epochs"]:
                        rows.append({"dataset": preset, "scale": scale, "loss": name, "lr": lr, "epoch": e["epoch"],
                                     "valid_mrr_at_20": e["valid_mrr_at_20"], "valid_p_at_20": e["valid_p_at_20"]})
                    print(f"{preset}, {name}, lr {lr}: valid MRR@20 by epoch "
                          + " ".join(f"{e['valid_mrr_at_20']:.4f}" for e in res["epochs"]), flush=True)
    out = pd.DataFrame(rows).assign(model="stamp", machine=machine(), date=dt.date.today().isoformat(),
                                    commit=commit())
    print(f"chosen: lr {chosen_rate(out):g}; the default profile uses synthetic_lr {profile['synthetic_lr']}")
    return out


def method(row) -> str | None:
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
        runs = runs[[(d, m) not in seen for d, m in zip(runs.dataset, runs.method)]]
        seen |= set(zip(runs.dataset, runs.method))
        parts.append(runs.assign(commit=commit(work)))
    runs = pd.concat(parts)
    if runs.empty:
        raise SystemExit(f"no runs on {', '.join(DATASETS)} in {', '.join(map(str, works))}: "
                         "build the default book with the real split first")
    table = (runs.groupby(["dataset", "method"])
             .agg(mrr_at_20=("mrr_at_20", "mean"), p_at_20=("p_at_20", "mean"), seeds=("seed", "nunique"),
                  epochs_run=("epochs_run", "max"), n_items=("n_items", "first"), commit=("commit", "first"))
             .reset_index())
    vsknn = table[table.method == "vsknn"].set_index("dataset").mrr_at_20
    table["ratio_to_vsknn"] = table.mrr_at_20 / table.dataset.map(vsknn)
    table["data"] = table.dataset.map(DATASETS)
    return table.assign(machine=machine(), date=dt.date.today().isoformat())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", action="store_true", help="choose the synthetic learning rate on validation")
    ap.add_argument("--work", type=Path, nargs="+", help="book builds' work folders, e.g. _build/work/default; "
                    "each method is read from the first that has it")
    a = ap.parse_args()
    if not a.sweep and a.work is None:
        ap.error("give --sweep, --work DIR or both")
    OUT.mkdir(parents=True, exist_ok=True)
    if a.sweep:
        path = OUT / "calibration_lr.csv"
        sweep().to_csv(path, index=False, float_format="%.4f")
        print(f"wrote {path}")
    if a.work is not None:
        table = order_table([w.resolve() for w in a.work])
        path = OUT / "calibration.csv"
        table.to_csv(path, index=False, float_format="%.4f")
        print(table[["data", "method", "mrr_at_20", "p_at_20", "ratio_to_vsknn", "seeds"]].to_string(index=False))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
