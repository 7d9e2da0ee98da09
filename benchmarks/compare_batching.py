"""One pass per session against prefix batches, on the standard Diginetica split: epoch time and accuracy.

Takes the Table 1 runs of a book build (the recommended loss, ``--batching
buckets``, every seed of the profile) from its results store, trains the same
configurations with ``--batching sessions`` for each encoder that has a
one-pass form (GRU4Rec, NARM, STAMP), the way the book trains them (two runs
at once, one thread each), into the same store, and sets the two side by
side: seconds per training epoch, and test MRR@20 and P@20 at the epoch chosen
on validation, per seed and as ratios of the means.

    make book                                          # with ../shared present: the Table 1 runs
    python benchmarks/compare_batching.py --work _build/work/default

Resumable: finished runs are kept in the store and not trained again. Writes
``benchmarks/results/batching.csv``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srs_core import experiments as ex  # noqa: E402
from srs_core.bench import machine  # noqa: E402
from srs_core.models import MODELS  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402
from srs_core.training import TrainConfig  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "batching.csv"
DATASET = "diginetica-srgnn"


def table1_configs(work: Path) -> list[TrainConfig]:
    """The stored Table 1 runs with the recommended loss and bucketed batches, for the one-pass encoders."""
    out = []
    for rec in ex.results_store(work).records():
        c = rec["config"]
        if (rec.get("kind", "neural") == "neural" and Path(c["data"]).name == DATASET and c.get("batching") == "buckets"
                and c.get("loss") == "sampled_softmax" and MODELS[c["model"]].one_pass):
            fields = {k: v for k, v in c.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
            fields["data"] = str(ex.dataset_dir(work, DATASET))
            out.append(TrainConfig(**fields))
    if not out:
        raise SystemExit(f"no Table 1 runs on {DATASET} with --batching buckets in {work}: build the default book "
                         "with the real split first")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, type=Path, help="the book build's work folder, e.g. _build/work/default")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batchings", default="sessions",
                    help="comma-separated batchings to train beside the stored buckets runs (sessions, samples)")
    ap.add_argument("--models", default="", help="comma-separated models (default: every one-pass encoder)")
    a = ap.parse_args()
    work = a.work.resolve()
    others = [b for b in a.batchings.split(",") if b]
    bad = sorted(set(others) - {"sessions", "samples"})
    if bad:
        raise SystemExit(f"--batchings: unknown batching {', '.join(bad)}; choose from sessions, samples")
    base = table1_configs(work)
    if a.models:
        base = [c for c in base if c.model in a.models.split(",")]
    extra = [dataclasses.replace(c, batching=b) for b in others for c in base]
    print(f"[batching] {len(base)} bucketed runs found; training {len(extra)} with --batching "
          f"{' and '.join(others)}", flush=True)
    runs = ex.run_grid(work, base + extra, workers=a.workers)
    runs = runs[["model", "batching", "seed", "epochs_run", "best_epoch", "epoch_seconds", "mrr_at_20", "p_at_20",
                 "valid_mrr_at_20"]].sort_values(["model", "batching", "seed"])
    runs = runs.assign(machine=machine(), date=dt.date.today().isoformat())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    if OUT.exists():  # a run for some models or batchings keeps the other rows
        old = pd.read_csv(OUT)
        # a run read back from the store (same seed, same seconds) keeps the date it was measured on
        when = old.assign(s=old.epoch_seconds.round(3)).set_index(["model", "batching", "seed", "s"]).date
        key = pd.MultiIndex.from_arrays([runs.model, runs.batching, runs.seed, runs.epoch_seconds.round(3)])
        runs["date"] = when.reindex(key).fillna(runs.date.iloc[0]).to_numpy()
        keep = ~old.set_index(["model", "batching"]).index.isin(runs.set_index(["model", "batching"]).index)
        runs = pd.concat([old[keep], runs]).sort_values(["model", "batching", "seed"])
    atomic_write_bytes(OUT, runs.to_csv(index=False, float_format="%.4f").encode())
    mean = runs.groupby(["model", "batching"])[["epoch_seconds", "mrr_at_20", "p_at_20"]].mean().unstack("batching")
    summary = pd.DataFrame({"epoch s, buckets": mean[("epoch_seconds", "buckets")]})
    for b in ("sessions", "samples"):
        if ("epoch_seconds", b) in mean:  # each batching against buckets: time, MRR@20 and P@20 ratios
            summary[f"epoch s, {b}"] = mean[("epoch_seconds", b)]
            summary[f"time {b} / buckets"] = mean[("epoch_seconds", b)] / mean[("epoch_seconds", "buckets")]
            summary[f"MRR@20 {b} / buckets"] = mean[("mrr_at_20", b)] / mean[("mrr_at_20", "buckets")]
            summary[f"P@20 {b} / buckets"] = mean[("p_at_20", b)] / mean[("p_at_20", "buckets")]
    print(runs.to_string(index=False))
    print(summary.round(3).to_string())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
