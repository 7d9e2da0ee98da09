"""End to end: one epoch of `srs train` on the synthetic MeLi2020 preset.

What a user runs, timed from the outside: the real command line in a fresh
process (``python -m srs_core.cli train``), default settings (CUDA graph
where it can, batches made on the device), with the recommended scalable
loss: negative sampling with L2, score scale 5, popularity sampling,
``sparse_fast``. Each run's record gives the seconds of training and of
evaluation (full ranking of every test sample over all items) separately;
ms per step is training seconds over the epoch's steps (the first, eager
warm-up steps, the graph capture, batch making and the progress bar
included). Targets on one H100/H200 at MeLi2020 size (1.28M items, 4.68M
samples, 36.5k steps): STAMP <= 1.2 ms per step (an epoch in <= 45 s),
SR-GNN <= 1.8 ms.

With ``--ddp-check`` it also trains a small dataset twice with ``--graph
on``, alone and under ``torchrun`` (one process per GPU, NCCL), and compares
the two: the check that NCCL collectives capture in a CUDA graph.

    python benchmarks/bench_train.py                     # GPU, scale 1.0
    python benchmarks/bench_train.py --device cpu --smoke   # tiny, to check it runs

Writes ``results/gpu_train.csv`` (``--smoke``: ``gpu_train_smoke.csv``, not committed).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from srs_core.bench import machine  # noqa: E402

OUT_DIR = Path(__file__).parent / "results"

WORK = ROOT / "benchmarks" / "out"  # git-ignored
RECOMMENDED = ["--loss", "ns", "--l2", "--score-scale", "5", "--sampling", "popularity", "--optimizer", "sparse_fast"]
TARGET_MS = {"stamp": 1.2, "srgnn": 1.8}
MELI_SAMPLES = 4_675_443  # Table 3
FIELDS = ["machine", "device", "model", "scale", "n_items", "n_train_samples", "n_test_samples", "steps",
          "train_seconds", "eval_seconds", "ms_per_step", "meli_epoch_seconds", "target_ms", "train_step",
          "wall_seconds", "cuda_peak_gb", "loss", "mrr_at_20", "torch", "date"]


def srs(*args: str, torchrun: int = 0, timeout: float = 900) -> float:
    """Run the ``srs`` command line in a fresh process; return its wall seconds."""
    cmd = [sys.executable, "-m", "srs_core.cli", *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}",
               "-m", "srs_core.cli", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd[1:])}` failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    return time.perf_counter() - t0


def dataset(preset: str, scale: float) -> Path:
    out = WORK / f"{preset.replace('/', '-')}-{scale:g}"
    if not (out / "stats.json").is_file():
        wall = srs("synth", "--preset", preset, "--scale", str(scale), "--seed", "0", "--output", str(out), "--quiet")
        print(f"synthesised {preset} at scale {scale:g} in {wall:.0f} s", flush=True)
    return out


def train_once(data: Path, model: str, device: str, out: Path, extra=(), torchrun: int = 0) -> tuple[dict, float]:
    wall = srs("train", "--data", str(data), "--model", model, *RECOMMENDED, "--epochs", "1", "--device", device,
               "--output", str(out), "--force", "--quiet", *extra, torchrun=torchrun)
    return json.loads((out / "result.json").read_text()), wall


def row(rec: dict, wall: float, model: str, scale: float, device: str) -> dict:
    e = rec["epochs"][0]
    stats = rec["dataset_stats"]
    steps = math.ceil(stats["n_train_samples"] / rec["config"]["batch_size"])
    ms = e["train_seconds"] * 1e3 / steps
    return {"machine": rec["environment"]["device_name"], "device": device, "model": model, "scale": scale,
            "n_items": rec["n_items"], "n_train_samples": stats["n_train_samples"],
            "n_test_samples": stats.get("n_test_samples", ""), "steps": steps,
            "train_seconds": round(e["train_seconds"], 2), "eval_seconds": round(e["eval_seconds"], 2),
            "ms_per_step": round(ms, 3), "meli_epoch_seconds": round(ms * math.ceil(MELI_SAMPLES / 128) / 1e3, 1),
            "target_ms": TARGET_MS.get(model, ""), "train_step": rec["environment"].get("train_step", ""),
            "wall_seconds": round(wall, 1), "cuda_peak_gb": round(rec.get("cuda_peak_bytes", 0) / 2**30, 2),
            "loss": round(e["loss"], 4), "mrr_at_20": round(e["mrr_at_20"], 4), "torch": torch.__version__,
            "date": dt.date.today().isoformat()}


def ddp_check(device: str, smoke: bool) -> str:
    """The same small run alone and under torchrun (NCCL on GPUs), both with
    the graphed step; returns a line of text."""
    data = dataset("diginetica", 0.005 if smoke else 0.02)
    nproc = max(1, min(torch.cuda.device_count(), 2)) if device.startswith("cuda") else 2
    dev = "cuda" if device.startswith("cuda") else "cpu"
    one, _ = train_once(data, "stamp", dev, WORK / "ddp-one", ["--graph", "on", "--dim", "32"])
    many, wall = train_once(data, "stamp", dev, WORK / "ddp-many", ["--graph", "on", "--dim", "32"], torchrun=nproc)
    a, b = one["epochs"][0], many["epochs"][0]
    ok = math.isclose(a["loss"], b["loss"], rel_tol=1e-3) and abs(a["mrr_at_20"] - b["mrr_at_20"]) < 5e-3
    return (f"torchrun --nproc_per_node {nproc} ({many['environment'].get('distributed_backend')}, "
            f"{many['environment'].get('train_step')}): loss {b['loss']:.5f} vs {a['loss']:.5f} alone, "
            f"MRR@20 {b['mrr_at_20']:.4f} vs {a['mrr_at_20']:.4f}, {wall:.0f} s -> {'OK' if ok else 'MISMATCH'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--scale", type=float, default=1.0, help="meli2020 preset scale (1.0: 1.28M items, 4.68M samples)")
    p.add_argument("--models", default="stamp,srgnn")
    p.add_argument("--deadline", type=float, default=0.0,
                   help="Unix time by which to finish: a run predicted to overrun it is skipped (0: none)")
    p.add_argument("--ddp-check", action="store_true", help="also compare a torchrun run with a single-process one")
    p.add_argument("--smoke", action="store_true", help="scale 0.003, to check the script runs (any device)")
    p.add_argument("--out", default=str(OUT_DIR / "gpu_train.csv"))
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    scale = 0.003 if args.smoke else args.scale
    data = dataset("meli2020", scale)
    print(f"device: {machine(torch.device(args.device))}, torch {torch.__version__}; meli2020 at scale {scale:g}",
          flush=True)
    rows, expect = [], None
    for model in args.models.split(","):
        if expect and args.deadline and time.time() + expect > args.deadline:
            print(f"{model}: skipped, about {expect:.0f} s would overrun the budget")
            continue
        rec, wall = train_once(data, model, args.device, WORK / f"e2e-{model}")
        r = dict(row(rec, wall, model, scale, args.device), machine=machine(torch.device(args.device)))
        rows.append(r)
        expect = wall * (1.6 if model == "stamp" else 1.0)  # SR-GNN's step costs ~1.4x STAMP's
        verdict = ""
        if r["target_ms"] and not args.smoke and scale == 1.0:
            verdict = f"target <= {r['target_ms']} ms: {'OK' if r['ms_per_step'] <= r['target_ms'] else 'MISSED'}"
        print(f"{model:<6} {r['steps']:,} steps ({r['train_step']}): train {r['train_seconds']:.1f} s/epoch = "
              f"{r['ms_per_step']:.3f} ms/step, eval {r['eval_seconds']:.1f} s ({r['n_test_samples']:,} test samples "
              f"x {r['n_items']:,} items), command {r['wall_seconds']:.0f} s, peak {r['cuda_peak_gb']} GB  {verdict}",
              flush=True)
    if args.ddp_check:
        if args.deadline and time.time() + 40 > args.deadline:
            print("torchrun check: skipped, it would overrun the budget")
        else:
            print(ddp_check(args.device, args.smoke), flush=True)
    out = Path(args.out)
    if args.smoke:
        out = out.with_name(out.stem + "_smoke.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
