"""Calibration of the synthetic presets against the real data we have.

Two pairs: the Diginetica-like preset against the standard Diginetica split,
and the Yoochoose 1/64-like preset against the yoochoose-100k sample. Four
parts, all but ``--train`` written to ``benchmarks/results/``:

* ``--sweep``: the learning rate of the synthetic presets. STAMP with
  cross-entropy trains on the Diginetica-like and MeLi2020-like presets (at
  the default profile's scales) for 4 epochs at each rate; on each preset a
  rate scores its best validation MRR@20 over the best of any rate there, and
  the rate with the highest mean score is the profiles' ``synthetic_lr``
  (``srs_core.calibration.chosen_rate``): one rate for every preset, so it is
  chosen on the smallest-data preset as well as on the calibrated one. STAMP
  with the recommended loss runs the same rates on the Diginetica-like preset,
  for reference (the choice does not read it). Writes ``calibration_lr.csv``
  (one row per preset, loss, rate and epoch; about 8 minutes).
* ``--train NAME [NAME ...] --into DIR``: the runs of the order table for
  datasets whose book builds do not hold them all (the yoochoose-100k sample
  and its preset): every baseline, and STAMP and SR-GNN with cross-entropy
  and with the recommended loss, trained as the ``default`` profile trains
  Experiment II (its seeds, epochs, learning rates, early stopping on real
  data), into the results store of ``DIR`` (resumable; about 7 minutes for
  the pair on 2 cores); with ``--scale S`` the presets named are made at
  scale ``S`` instead of the profile's (the Diginetica-like preset at 0.1,
  eleven thousand items: about 15 minutes);
* ``--knn``: V-SKNN with one of its three refinements taken away at a time
  (IDF weights, the weights of the session's recent clicks, the discount of
  neighbours by step), and SKNN, on the test splits of the real Diginetica
  split and of the Diginetica-like preset: where the preset's order of the
  two session k-NN methods differs from the split's, which refinement is
  behind it. Each is chosen on validation over the books' grid, as in the
  order table. Writes ``calibration_knn.csv`` (6-10 minutes; needs the
  real split, or ``--keep`` for its rows of the current file);
* ``--work DIR [DIR ...]``: the order of the methods, read from the results
  store of book builds (``_build/work/default`` after ``make book`` with the
  real split present; with several folders, each method comes from the first
  that has it at that dataset's scale (read from the folder's
  ``recipe.json``; each scale is a table of its own), e.g. the preset from a
  new build and the split's costly runs from an earlier one, each row naming
  its build's commit): every baseline, each model with cross-entropy and with
  the recommended loss, on each preset and its real data (:data:`DATASETS`), as
  mean MRR@20 and P@20 over the seeds stored, and each as a ratio to
  V-SKNN's. Writes ``calibration.csv``; the data chapter
  (``notebooks/00-data.ipynb``) shows one table per pair. With ``--keep``,
  the rows of the current file for datasets that no folder has (the real
  split's costly runs, from a build no longer at hand) stay, each with its
  own commit, date and machine (a file from before scales were recorded is
  read at the default profile's scales).

    python benchmarks/calibrate_synthetic.py --sweep                 # about 8 minutes
    python benchmarks/calibrate_synthetic.py --knn                   # 6-10 minutes
    python benchmarks/calibrate_synthetic.py --train yoochoose-1/64 yoochoose-100k --into calib
    python benchmarks/calibrate_synthetic.py --train diginetica --scale 0.1 --into calib-0.1
    python benchmarks/calibrate_synthetic.py --work _build/work/default calib calib-0.1 --keep

The presets' knobs themselves (``srs_core/data/presets.py``) were chosen
by hand against this table; the sweep and the table are what can be re-run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srs_core import experiments as ex  # noqa: E402
from srs_core.data.synthetic import synthesize  # noqa: E402
from srs_core.calibration import CALIBRATION_DATA, KNN_VARIANTS, read as read_calibration  # noqa: E402
from srs_core.publish.book import load_profile  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration_order import COMMIT_FILE, commit, machine, order_table, with_kept, with_scales  # noqa: E402

OUT = ROOT / "benchmarks" / "results"
RATES = (0.001, 0.003, 0.005, 0.01, 0.02)
DATASETS = CALIBRATION_DATA  # results-store dataset names and the labels of calibration.csv's ``data`` column
TRAINED = ("stamp", "srgnn")  # the models --train runs


SWEPT = ("diginetica", "meli2020")  # the presets the rate is chosen on


def sweep(epochs: int = 4) -> pd.DataFrame:
    """STAMP at each rate on the presets of ``SWEPT`` (the default profile's scales), with
    cross-entropy, on which the rate is chosen (``calibration.chosen_rate``), and, for reference on the
    Diginetica-like preset, with the recommended loss; one row per preset, loss, rate and epoch."""
    from srs_core.calibration import chosen_rate
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


def train(names: list[str], into: Path, scale: float | None = None) -> None:
    """Every baseline, and :data:`TRAINED` with cross-entropy and the recommended loss, on ``names``
    as the ``default`` profile trains Experiment II, into the results store of ``into``; the
    synthetic presets among ``names`` at ``scale`` where given, else at the profile's scales."""
    profile = load_profile("default")
    raw = ex.locate_raw(profile.get("raw_paths") or {})
    for name in names:
        if name in ex.REAL_ONLY and not Path(raw.get(name, "")).exists():
            raise SystemExit(f"{name}: its raw file ({profile['raw_paths'].get(name)}) is absent; --train needs it")
        at = scale if scale is not None and name not in ex.REAL_ONLY else (profile.get("scale") or {}).get(name, 1.0)
        ex.prepare_dataset(into, name, scale=at, seed=profile.get("seed", 0), raw_path=raw.get(name), quiet=False)
    print("baselines ...", flush=True)
    ex.run_baselines(into, names)
    base = ex.configs(into, names, list(TRAINED), profile["seeds"], epochs=profile["epochs"],
                      batch_size=profile["batch_size"], dim=profile["dim"], lr=profile["lr"],
                      real={"epochs": profile["real_epochs"], "patience": profile["patience"]},
                      synthetic={"lr": profile["synthetic_lr"]})
    runs = (ex.with_fields(base, loss="ce", optimizer="dense", l2=False)
            + ex.with_fields(base, **profile["recommended"]))
    ex.run_grid(into, runs, quiet=False, workers=profile.get("workers", 1))
    (into / COMMIT_FILE).write_text(commit() + "\n")


KNN_PAIRS = {"diginetica-srgnn": "diginetica"}  # --knn: each real dataset and its preset


def knn(keep: pd.DataFrame | None = None) -> pd.DataFrame:
    """MRR@20 and P@20 on the test split of each dataset of :data:`KNN_PAIRS` (the real one and
    its preset at the default profile's scale and seed) of V-SKNN, of V-SKNN with one refinement
    taken away at a time, and of SKNN (:data:`srs_core.calibration.KNN_VARIANTS`), each chosen on
    the validation split over the grid the books use (``baselines.VALID_GRIDS``, less the setting
    a variant fixes), as in ``calibration.csv``. A real dataset whose file is absent keeps its rows
    of ``keep`` (the current file), or stops with a message."""
    from srs_core.baselines import VALID_GRIDS, tune_baseline

    profile = load_profile("default")
    raw = ex.locate_raw(profile.get("raw_paths") or {})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for real, preset in KNN_PAIRS.items():
            for name in (real, preset):
                if name in ex.REAL_ONLY and not Path(raw.get(name, "")).exists():
                    if keep is not None and (keep.dataset == name).any():
                        print(f"{name}: its file is absent; its rows of the current file stay")
                        rows += keep[keep.dataset == name].to_dict("records")
                        continue
                    raise SystemExit(f"{name}: its file ({profile['raw_paths'].get(name)}) is absent; "
                                     "--knn needs it (or --keep with a current calibration_knn.csv)")
                data = ex.prepare_dataset(Path(tmp), name, scale=(profile.get("scale") or {}).get(name, 1.0),
                                          seed=profile.get("seed", 0), raw_path=raw.get(name))
                for variant, (_, baseline, params) in KNN_VARIANTS.items():
                    grid = {**VALID_GRIDS.get(baseline, {}), **{k: [v] for k, v in params.items()}}
                    res = tune_baseline(baseline, data, grid=grid)
                    rows.append({"dataset": name, "data": DATASETS[name], "variant": variant,
                                 "mrr_at_20": res["test"]["mrr_at_20"], "p_at_20": res["test"]["p_at_20"],
                                 "params": json.dumps(res["params"], sort_keys=True), "n_items": data.n_items,
                                 "machine": machine(), "date": dt.date.today().isoformat(), "commit": commit()})
                    print(f"{name}, {variant}: MRR@20 {res['test']['mrr_at_20']:.4f} with {res['params']}", flush=True)
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, name: str) -> Path:
    """``table`` as ``benchmarks/results/NAME``, whole or not at all."""
    path = OUT / name
    atomic_write_bytes(path, table.to_csv(index=False, float_format="%.4f").encode())
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", action="store_true", help="choose the synthetic learning rate on validation")
    ap.add_argument("--train", nargs="+", metavar="NAME", help="datasets to train the order table's runs on")
    ap.add_argument("--into", type=Path, help="the work folder --train writes its runs to")
    ap.add_argument("--scale", type=float, help="with --train: the scale of the synthetic presets named "
                    "(default: the default profile's); the order table keeps each scale apart")
    ap.add_argument("--work", type=Path, nargs="+", help="book builds' work folders, e.g. _build/work/default; "
                    "each method is read from the first that has it")
    ap.add_argument("--knn", action="store_true", help="V-SKNN with each refinement taken away, on the real split "
                    "and its preset (calibration_knn.csv)")
    ap.add_argument("--keep", action="store_true", help="with --work: keep the rows of the current calibration.csv "
                    "for datasets that no work folder has (each with its own commit, date and machine); with --knn: "
                    "keep the current calibration_knn.csv's rows of a real dataset whose file is absent")
    a = ap.parse_args()
    if not a.sweep and not a.knn and a.work is None and a.train is None:
        ap.error("give --sweep, --knn, --train NAME ... --into DIR, --work DIR, or several")
    if a.train is not None and a.into is None:
        ap.error("--train needs --into DIR")
    if a.scale is not None and (a.train is None or a.scale <= 0):
        ap.error("--scale goes with --train, and is a positive number")
    if a.train is not None:
        train(a.train, a.into.resolve(), a.scale)
    if a.sweep:
        print(f"wrote {write(sweep(), 'calibration_lr.csv')}")
    if a.knn:
        current = OUT / "calibration_knn.csv"
        table = knn(read_calibration(current) if a.keep and current.is_file() else None)
        print(f"wrote {write(table, current.name)}")
    if a.work is not None:
        table = order_table([w.resolve() for w in a.work])
        current = OUT / "calibration.csv"
        if a.keep and current.is_file():
            table = with_kept(table, with_scales(read_calibration(current)))
        path = write(table, current.name)
        print(table[["data", "scale", "method", "mrr_at_20", "p_at_20", "ratio_to_vsknn", "seeds"]].to_string(index=False))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
