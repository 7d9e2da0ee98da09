"""Step cost of each loss's best setting against the dissertation's ns + sparse_fast.

The budget: at 1.28M items every recommended configuration's training
step stays within 1.5x of negative sampling with L2, 100 uniform negatives and
``sparse_fast`` (the dissertation's setting with our optimizer). All
configurations are built once, then timed step by step in turn (interleaved,
so that machine noise hits them alike), each on the same random batches; the
median over repeats is reported with its ratio to the reference.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_recommended.py            # 1.28M items, CPU
    PYTHONPATH=. .venv/bin/python benchmarks/bench_recommended.py --smoke    # 1e4 items, seconds
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from srs_core.bench import StepSpec, build_step, clock, machine, random_batches, sync  # noqa: E402

OUT_DIR = Path(__file__).parent / "results"

#: name -> StepSpec fields on top of the reference (ns, L2, k=100 uniform, sparse_fast)
CONFIGS = {
    "ns (reference)": {},
    "ns, S=5, popularity": {"score_scale": 5.0, "sampling": "popularity"},
    "triplet, popularity": {"loss": "triplet", "sampling": "popularity"},
    "sampled_softmax, S=10, popularity": {"loss": "sampled_softmax", "score_scale": 10.0, "sampling": "popularity"},
    "ns, k=1000 shared": {"negatives": 1000, "shared_negatives": True},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="stamp")
    p.add_argument("--items", type=float, default=1.28e6)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true", help="1e4 items, 3 repeats: checks that it runs")
    p.add_argument("--out", default=str(OUT_DIR / "recommended_step.csv"))
    a = p.parse_args(argv)
    if a.smoke:
        a.items, a.repeats, a.warmup = 1e4, 3, 1
        a.out = str(Path(a.out).with_name("recommended_step_smoke.csv"))
    device = torch.device(a.device)
    n = int(a.items)
    steps = {}
    for name, fields in CONFIGS.items():
        spec = StepSpec(model=a.model, n_items=n, device=a.device, **{"loss": "ns", **fields})
        steps[name] = build_step(spec)
        print(f"built {name}", flush=True)
    batches = random_batches(a.warmup + a.repeats, 128, 24, n, device)
    times = {name: [] for name in steps}
    for i, batch in enumerate(batches):
        for name, step in steps.items():
            sync(device)
            t0 = clock(device)
            step(*batch)
            sync(device)
            if i >= a.warmup:
                times[name].append((clock(device) - t0) * 1e3)
    ref = statistics.median(times["ns (reference)"])
    rows = [{"machine": machine(device), "date": dt.date.today().isoformat(), "model": a.model, "n_items": n,
             "config": name, "median_ms": statistics.median(t), "ratio_to_ns": statistics.median(t) / ref,
             "repeats": len(t), "threads": torch.get_num_threads()} for name, t in times.items()]
    df = pd.DataFrame(rows)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(a.out)
    print(df[["config", "median_ms", "ratio_to_ns"]].round(3).to_string(index=False))
    worst = df.ratio_to_ns.max()
    print(f"largest ratio to ns + sparse_fast: {worst:.2f} (budget 1.5) -> {'OK' if worst <= 1.5 else 'OVER BUDGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
