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
    a = ap.parse_args()
    work = a.work.resolve()
    base = table1_configs(work)
    sessions = [dataclasses.replace(c, batching="sessions") for c in base]
    print(f"[batching] {len(base)} bucketed runs found; training {len(sessions)} with --batching sessions", flush=True)
    runs = ex.run_grid(work, base + sessions, workers=a.workers)
    runs = runs[["model", "batching", "seed", "epochs_run", "best_epoch", "epoch_seconds", "mrr_at_20", "p_at_20",
                 "valid_mrr_at_20"]].sort_values(["model", "batching", "seed"])
    runs = runs.assign(machine=machine(), date=dt.date.today().isoformat())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    runs.to_csv(OUT, index=False, float_format="%.4f")
    mean = runs.groupby(["model", "batching"])[["epoch_seconds", "mrr_at_20", "p_at_20"]].mean().unstack("batching")
    summary = pd.DataFrame({"epoch s, buckets": mean[("epoch_seconds", "buckets")],
                            "epoch s, sessions": mean[("epoch_seconds", "sessions")],
                            "speed-up": mean[("epoch_seconds", "buckets")] / mean[("epoch_seconds", "sessions")],
                            "MRR@20 ratio": mean[("mrr_at_20", "sessions")] / mean[("mrr_at_20", "buckets")],
                            "P@20 ratio": mean[("p_at_20", "sessions")] / mean[("p_at_20", "buckets")]})
    print(runs.to_string(index=False))
    print(summary.round(3).to_string())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
