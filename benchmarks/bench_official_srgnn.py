"""Our SR-GNN beside the official SR-GNN code, on the same split and machine.

The official code (CRIPAC-DIG/SR-GNN, ``pytorch_code/``; not on PyPI) trains
SR-GNN with full cross-entropy, Adam with a step decay and L2, batches of
100, every prefix padded to the longest session of the data, and reads its
data as two pickles, ``datasets/<name>/train.txt`` and ``test.txt``, each a
pair (prefixes, targets). This script:

1. writes one of our processed datasets (``--data``, e.g. the standard
   Diginetica split as ``srs import-split`` makes it) in that format into a
   scratch copy of the official folder: the training samples of our training
   split (every prefix; our validation part is left out, as ours trains
   without it) and every test sample. The pickles are ours, written from
   plain lists of ints, so the official ``pickle.load`` reads nothing else;
2. runs the official ``main.py`` (``--dataset diginetica``, which fixes its
   item count at 43,098, the split's ids 1..43,097 plus padding) for
   ``--epochs`` epochs in its own pinned environment (``--official-python``),
   and reads each epoch's training time (its "start training" and "start
   predicting" lines) and its test Recall@20 (our P@20) and MRR@20, in
   percent, best over the epochs (its protocol);
3. trains ours with ``srs train --model srgnn`` on the same dataset for the
   same epochs (``--ours``: the recommended loss with buckets by default) and
   reads the same numbers from its record (the epoch chosen on validation,
   and the best test epoch, the official protocol);
4. writes one row per implementation to ``benchmarks/results/official.csv``
   (beside the GRU4Rec rows of ``bench_official.py``).

Both run one after the other with torch's default threads; run it on an
otherwise idle machine. Set up with ``make bench-official`` (its environment
has numpy < 2 and networkx, which the official code imports), after cloning
the official repository yourself, e.g. ``git clone
https://github.com/CRIPAC-DIG/SR-GNN ../srgnn-official``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srs_core.data.dataset import ProcessedDataset, Split  # noqa: E402
from bench_official import prepare, run_ours, write_rows  # noqa: E402  (this folder: the GRU4Rec peer's script)

OUT = Path(__file__).parent / "results" / "official.csv"
STAMP = re.compile(r"^start (training|predicting):\s+(\S+ \S+)")
BEST = re.compile(r"^\s*Recall@20:\s*(\d+\.\d+)\s*MMR@20:\s*(\d+\.\d+)")
N_NODE = 43_098  # what the official main.py fixes for --dataset diginetica


def samples(split: Split) -> tuple[list[list[int]], list[int]]:
    """Every sample of ``split`` as the official code reads it: (prefix, target) lists of plain ints."""
    sess, pos = split.sample_index()
    items = np.asarray(split.items).tolist()
    starts = np.asarray(split.offsets)[sess].tolist()
    prefixes = [items[s:s + p] for s, p in zip(starts, pos.tolist())]
    targets = [items[s + p] for s, p in zip(starts, pos.tolist())]
    return prefixes, targets


def write_official(ds: ProcessedDataset, root: Path) -> int:
    """The two pickles under ``root/datasets/diginetica/``; returns the test samples written."""
    if ds.n_items + 1 > N_NODE:
        sys.exit(f"--data has {ds.n_items:,} items; the official main.py's diginetica setting holds at most {N_NODE - 1:,}")
    folder = root / "datasets" / "diginetica"
    folder.mkdir(parents=True)
    for name, split in (("train.txt", ds.train), ("test.txt", ds.test)):
        with open(folder / name, "wb") as fh:
            pickle.dump(samples(split), fh)
    return ds.test.n_samples


#: Run by the official interpreter in its folder: main.py as it is, except that with a step limit each
#: training epoch stops after that many batches (the test set is still ranked whole).
LAUNCH = """import sys
limit = int(sys.argv.pop(1))
import utils
whole = utils.Data.generate_batch
utils.Data.generate_batch = lambda self, size: whole(self, size)[:limit] if (self.shuffle and limit) else whole(self, size)
exec(compile(open("main.py").read(), "main.py", "exec"))
"""


def run_official(python: str, code: Path, epochs: int, steps: int, log: Path) -> dict:
    cmd = [python, "-c", LAUNCH, str(steps), "--dataset", "diginetica", "--epoch", str(epochs)]
    out = subprocess.run(cmd, cwd=code, capture_output=True, text=True)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        sys.exit(f"the official main.py failed (exit {out.returncode}); its output is in {log}")
    stamps = [(m.group(1), dt.datetime.fromisoformat(m.group(2))) for m in map(STAMP.match, out.stdout.splitlines()) if m]
    seconds = [(b - a).total_seconds() for (ka, a), (kb, b) in zip(stamps, stamps[1:])
               if ka == "training" and kb == "predicting"]
    best = [m for m in map(BEST.match, out.stdout.splitlines()) if m]
    if not seconds or not best:
        sys.exit(f"could not read the official run's epoch times or metrics; its output is in {log}")
    return {"epoch_seconds": seconds, "p_at_20": float(best[-1].group(1)) / 100, "mrr_at_20": float(best[-1].group(2)) / 100}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="our processed split (srs import-split)")
    ap.add_argument("--official-dir", type=Path, required=True, help="a clone of CRIPAC-DIG/SR-GNN")
    ap.add_argument("--official-python", default=".venv-official/bin/python", help="its environment's interpreter")
    ap.add_argument("--epochs", type=int, default=1, help="epochs for both (an official epoch is long on a CPU)")
    ap.add_argument("--steps", type=int, default=0, help="stop each official training epoch after this many batches "
                    "of 100 (0: the whole epoch); its time is then per step, and its accuracy is after these steps")
    ap.add_argument("--smoke", action="store_true", help="a quick check of the set-up: results to official_smoke.csv")
    ap.add_argument("--ours", nargs=argparse.REMAINDER, default=None,
                    help="our srs train options after the model (default: the recommended loss with buckets)")
    args = ap.parse_args(argv)
    code = args.official_dir / "pytorch_code"
    if not (code / "main.py").is_file():
        sys.exit(f"--official-dir {args.official_dir}: no pytorch_code/main.py there; clone "
                 "https://github.com/CRIPAC-DIG/SR-GNN and pass its folder")
    ds, ours_opts, commit, here = prepare(args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copytree(code, tmp / "pytorch_code")  # main.py reads ../datasets/<name>/ from its own folder
        n_test = write_official(ds, tmp)
        print(f"official SR-GNN ({commit}), {args.epochs} epoch(s) on {args.data.name} ...", flush=True)
        # an absolute path, not a resolved one: the venv's python is a link, and the venv is what counts
        official = run_official(os.path.abspath(args.official_python), tmp / "pytorch_code", args.epochs, args.steps,
                                OUT.parent / f"official_srgnn_{args.data.name}{'_smoke' if args.smoke else ''}.log")
        print(f"ours: srs train --model srgnn {' '.join(ours_opts)}, {args.epochs} epoch(s) ...", flush=True)
        ours = run_ours(args.data, args.epochs, ours_opts, tmp / "ours", model="srgnn")
    stamp = dt.date.today().isoformat()
    full = -(-ds.train.n_samples // 100)  # the official batches of 100 in one epoch
    per_epoch = statistics.median(official["epoch_seconds"]) * (full / args.steps if args.steps else 1)
    rows = [{"machine": here, "date": stamp, "dataset": args.data.name, "implementation": "official SR-GNN",
             "setting": f"pytorch_code/main.py defaults ({commit})" + (
                 f"; the first {args.steps} of the {full:,} batches of each epoch, the epoch's time extrapolated"
                 if args.steps else ""), "epochs": args.epochs,
             "median_epoch_seconds": round(per_epoch, 2),
             "mrr_at_20": round(official["mrr_at_20"], 4), "p_at_20": round(official["p_at_20"], 4),
             "protocol": "best test epoch" + (f", after {args.steps} steps an epoch" if args.steps else ""),
             "test_predictions": n_test},
            {"machine": here, "date": stamp, "dataset": args.data.name, "implementation": "ours SR-GNN",
             "setting": " ".join(ours_opts), "epochs": args.epochs,
             "median_epoch_seconds": round(statistics.median(ours["epoch_seconds"]), 2),
             "mrr_at_20": round(ours["mrr_at_20"], 4), "p_at_20": round(ours["p_at_20"], 4),
             "protocol": f"epoch {ours['chosen_epoch']} chosen on validation (best test epoch {ours['test_best'][0]}: "
                         f"MRR@20 {ours['test_best'][1]:.4f}, P@20 {ours['test_best'][2]:.4f})",
             "test_predictions": ds.test.n_samples}]
    for r in rows:
        print(f"{r['implementation']:16s} {r['median_epoch_seconds']:8.2f} s/epoch  MRR@20 {r['mrr_at_20']:.4f}  "
              f"P@20 {r['p_at_20']:.4f}  ({r['protocol']})")
    print(f"ours is {rows[0]['median_epoch_seconds'] / rows[1]['median_epoch_seconds']:.2f}x the official code's speed per epoch")
    out = OUT.with_name("official_smoke.csv") if args.smoke else OUT
    write_rows(out, rows)  # the GRU4Rec rows of bench_official.py stay
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
