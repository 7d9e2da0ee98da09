"""Our GRU4Rec beside the official PyTorch GRU4Rec, on the same data and machine.

The official code (hidasib/GRU4Rec_PyTorch_Official, the authors' own
reimplementation; it is not on PyPI) trains GRU4Rec session-parallel, with
its own loss, sampler and Adagrad, and ships one parameter file per dataset
with its tuned settings. This script:

1. writes one of our processed datasets (``--data``) as the tab-separated
   files the official ``run.py`` reads (SessionId, ItemId, Time): the training
   sessions, and the test sessions (the official evaluation predicts every
   next click of a test session, as our prefixes do);
2. runs the official ``run.py`` with a parameter file of its repository
   (``--params``, with ``n_epochs`` set to ``--epochs``) in its own pinned
   environment (``--official-python``), and reads its seconds per epoch and its
   test Recall@20 (our P@20: one target per prediction) and MRR@20;
3. trains ours with ``srs train`` on the same dataset for the same number of
   epochs (``--ours``: the recommended loss by default), and reads the same
   numbers from its record (test metrics at the epoch chosen on validation);
4. appends one row per implementation to ``benchmarks/results/official.csv``
   (``--smoke``: ``official_smoke.csv``), with the machine, the date, the
   official commit and both settings.

Both run one after the other with torch's default threads on an otherwise
idle machine. Set up with ``make bench-official`` (it builds
``.venv-official`` from ``benchmarks/official-requirements.txt``), after
cloning the official repository yourself, e.g. ``git clone
https://github.com/hidasib/GRU4Rec_PyTorch_Official ../gru4rec-official``
(measured at commit d1fc311).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srs_core.data.dataset import ProcessedDataset  # noqa: E402
from srs_core.results import atomic_write_bytes  # noqa: E402

OUT_DIR = Path(__file__).parent / "results"
OURS_RECOMMENDED = ["--loss", "sampled_softmax", "--l2", "--score-scale", "10", "--sampling", "popularity",
                    "--optimizer", "sparse_fast", "--batching", "buckets"]
EPOCH_LINE = re.compile(r"^Epoch(\d+) --> loss: \S+ \t\((\d+\.\d+)s\)")
METRIC_LINE = re.compile(r"^Recall@20: (\d+\.\d+) MRR@20: (\d+\.\d+)")


def write_tsv(split, path: Path) -> int:
    """``split``'s sessions as SessionId/ItemId/Time rows; returns the number
    of next-click predictions the official evaluation makes on them."""
    lengths = np.diff(split.offsets)
    sessions = np.repeat(np.arange(len(lengths)), lengths)
    times = np.arange(len(split.items))  # clicks in session order; sessions in stored (time) order
    with open(path, "w") as fh:
        fh.write("SessionId\tItemId\tTime\n")
        for s, i, t in zip(sessions.tolist(), np.asarray(split.items).tolist(), times.tolist()):
            fh.write(f"{s}\t{i}\t{t}\n")
    return int((lengths - 1).clip(min=0).sum())


def official_params(repo: Path, param_file: str, epochs: int) -> str:
    """The parameter file's settings as ``run.py -ps``, with ``n_epochs`` replaced."""
    scope: dict = {}
    exec((repo / "paramfiles" / param_file).read_text(), scope)  # the repository's own file: an OrderedDict
    params = dict(scope["gru4rec_params"], n_epochs=epochs)
    return ",".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in params.items())


def run_official(python: str, repo: Path, train: Path, test: Path, params: str, log: Path) -> dict:
    cmd = [python, str(repo / "run.py"), str(train), "-ps", params, "-t", str(test), "-m", "20", "-d", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        sys.exit(f"the official run.py failed (exit {out.returncode}); its output is in {log}")
    epochs = [float(m.group(2)) for m in map(EPOCH_LINE.match, out.stdout.splitlines()) if m]
    metrics = [m for m in map(METRIC_LINE.match, out.stdout.splitlines()) if m]
    if not epochs or not metrics:
        sys.exit(f"could not read the official run's epoch times or metrics; its output is in {log}")
    return {"epoch_seconds": epochs, "p_at_20": float(metrics[-1].group(1)), "mrr_at_20": float(metrics[-1].group(2))}


def run_ours(data: Path, epochs: int, extra: list[str], out_dir: Path, model: str = "gru4rec") -> dict:
    """``srs train --model MODEL`` for ``epochs`` epochs: seconds per training epoch, the test metrics at
    the epoch chosen on validation, and the best test epoch (the peers' protocol)."""
    cmd = [sys.executable, "-m", "srs_core.cli", "train", "--data", str(data), "--model", model,
           "--epochs", str(epochs), "--patience", "0", "--output", str(out_dir), *extra]
    subprocess.run(cmd, check=True, capture_output=True)
    rec = json.loads((out_dir / "result.json").read_text())
    best_test = max(rec["epochs"], key=lambda e: e["mrr_at_20"])
    return {"epoch_seconds": [e["train_seconds"] for e in rec["epochs"]], "p_at_20": rec["best"]["p_at_20"],
            "mrr_at_20": rec["best"]["mrr_at_20"], "chosen_epoch": rec["best"]["epoch"],
            "test_best": (best_test["epoch"], best_test["mrr_at_20"], best_test["p_at_20"])}


def prepare(args) -> tuple[ProcessedDataset, list[str], str, str]:
    """What both peer scripts need first: the official interpreter checked, ``--data`` loaded, our
    options, the official clone's commit and this machine's name."""
    if not Path(args.official_python).exists():
        sys.exit(f"--official-python {args.official_python} does not exist; `make bench-official` builds it")
    ds = ProcessedDataset.load(args.data)
    ours_opts = OURS_RECOMMENDED if args.ours is None else args.ours
    commit = subprocess.run(["git", "-C", str(args.official_dir), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    import torch

    from srs_core.bench import machine

    return ds, ours_opts, commit, machine(torch.device("cpu"))


def write_rows(out: Path, rows: list[dict]) -> None:
    """Put ``rows`` into the CSV ``out`` in place of its rows of the same dataset and implementation (each
    peer script writes its own implementations' rows; the others' stay), written whole or not at all."""
    old = list(csv.DictReader(open(out))) if out.is_file() else []
    mine = {(r["dataset"], r["implementation"]) for r in rows}
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(old[0]) if old else list(rows[0]))
    w.writeheader()
    w.writerows([r for r in old if (r["dataset"], r["implementation"]) not in mine] + rows)
    atomic_write_bytes(out, text.getvalue().encode())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="one of our processed datasets (srs preprocess/import-split)")
    ap.add_argument("--official-dir", type=Path, required=True, help="a clone of hidasib/GRU4Rec_PyTorch_Official")
    ap.add_argument("--official-python", default=".venv-official/bin/python", help="its environment's interpreter")
    ap.add_argument("--params", required=True, help="a file of the official paramfiles/ folder, e.g. "
                    "yoochoose_xe_shared_best.py or diginetica_bprmax_shared_best.py")
    ap.add_argument("--epochs", type=int, default=10, help="epochs for both (the official files say 10)")
    ap.add_argument("--ours", nargs=argparse.REMAINDER, default=None,
                    help="our srs train options after the model (default: the recommended loss with buckets)")
    ap.add_argument("--smoke", action="store_true", help="1 epoch, results to official_smoke.csv")
    args = ap.parse_args(argv)
    if not (args.official_dir / "run.py").is_file():
        sys.exit(f"--official-dir {args.official_dir}: no run.py there; clone "
                 "https://github.com/hidasib/GRU4Rec_PyTorch_Official and pass its folder")
    epochs = 1 if args.smoke else args.epochs
    ds, ours_opts, commit, here = prepare(args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_tsv(ds.train, tmp / "train.tsv")  # our training split (without validation), for both
        n_eval = write_tsv(ds.test, tmp / "test.tsv")
        params = official_params(args.official_dir, args.params, epochs)
        print(f"official GRU4Rec ({commit}), {args.params}, {epochs} epoch(s) on {args.data.name} ...", flush=True)
        official = run_official(args.official_python, args.official_dir, tmp / "train.tsv", tmp / "test.tsv", params,
                                OUT_DIR / f"official_{args.data.name}.log")
        print(f"ours: srs train --model gru4rec {' '.join(ours_opts)}, {epochs} epoch(s) ...", flush=True)
        ours = run_ours(args.data, epochs, ours_opts, tmp / "ours")
    stamp = dt.date.today().isoformat()
    rows = []
    for name, res, setting in (("official", official, f"{args.params} ({commit})"), ("ours", ours, " ".join(ours_opts))):
        rows.append({"machine": here, "date": stamp, "dataset": args.data.name, "implementation": f"{name} GRU4Rec",
                     "setting": setting, "epochs": epochs,
                     "median_epoch_seconds": round(statistics.median(res["epoch_seconds"]), 2),
                     "mrr_at_20": round(res["mrr_at_20"], 4), "p_at_20": round(res["p_at_20"], 4),
                     "protocol": "last epoch" if name == "official" else f"epoch {res['chosen_epoch']} chosen on validation",
                     "test_predictions": n_eval if name == "official" else ds.test.n_samples})
    speed = rows[0]["median_epoch_seconds"] / rows[1]["median_epoch_seconds"]
    for r in rows:
        print(f"{r['implementation']:16s} {r['median_epoch_seconds']:8.2f} s/epoch  MRR@20 {r['mrr_at_20']:.4f}  "
              f"P@20 {r['p_at_20']:.4f}  ({r['protocol']}, {r['test_predictions']:,} predictions)")
    print(f"ours is {speed:.2f}x the official code's speed per epoch")
    out = OUT_DIR / ("official_smoke.csv" if args.smoke else "official.csv")
    write_rows(out, rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
