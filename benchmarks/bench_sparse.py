"""Training-step time and memory against catalogue size, per loss x optimizer.

One step = forward (STAMP by default) + loss (with fresh negatives) + backward
+ both optimizer steps, batch 128, sessions of 1..25 items, 100 negatives, L2
on. Pairings: ``ce+dense`` (the traditional method) and each sampled loss
(``ns``, ``triplet``, ``sampled_softmax``) with ``dense``, ``sparse``
(SparseAdam) and ``sparse_fast``; on CUDA also ``sparse_fast`` inside a CUDA
graph (``sparse_fast+graph``).

Noise control: the machines are shared, so the pairings of one loss at one
size run in one process and their steps are interleaved round-robin (A, B, C,
A, B, C, ...) after a warm-up; each reports its median over the repeats. The
ratios that have targets are taken between such interleaved
neighbours (``sparse_fast`` against ``sparse``), or are large enough not to
care (sampled against full cross-entropy).

Memory: ``state_mb`` is what the configuration holds after warm-up (weights,
gradients, optimizer state: resident-set growth on CPU, allocated memory on
CUDA); ``step_peak_mb`` the transient peak of one step above that;
``peak_mb`` their sum.

Floor (CPU, written before optimising): a sampled step touches about
B*L/2 + B + B*k = 14.6k rows of d = 100 floats (5.8 MB per pass). SparseAdam
makes ~10 passes over them plus a sort and sparse-tensor bookkeeping; the
fused row-wise update needs ~7 (gather weight, m, v; scatter them; sum the
gradient). At ~5-10 GB/s for random rows on 2 cores that is 4-8 ms, so the
update can shrink ~2x; forward/backward of STAMP and the loss (~10 ms) is
left as it is, which bounds the whole-step gain near 1.5x. Nothing in a
sampled step depends on N except cache/TLB misses on a larger table.

Measured (2-core AMD EPYC VM, torch 2.13, STAMP, ns, 1e6 items): forward
3 ms, backward 5-7 ms for both; the embedding update 11-13 ms with SparseAdam
(sparse_mask, coalesce, three sparse-into-dense additions, fresh temporaries)
against 4-5 ms for sparse_fast (dedupe 0.15, gradient sums 0.6, two gathers
and three ``index_add_`` of random rows ~3, element-wise 0.5). Random-row
``index_select``/``index_add_`` run at only 3-8 GB/s, so the update sits near
the floor's slow end; huge pages for the three tables cut ~5% of the step.
Whole step: 1.5-1.8x at 1e5-1e6 items; at 1e3-1e4 items the update is
small for both and the two are level within the machine's noise.

    python benchmarks/bench_sparse.py                     # CPU, 1e3..1e6 items
    python benchmarks/bench_sparse.py --device cuda --max-items 1e7
    python benchmarks/bench_sparse.py --device cpu --smoke  # seconds, for CI
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from srs_core.bench import (clock, current_mb, machine, make_model, peak_mb, random_batches, reset_peak,  # noqa: E402
                            sync, wait_for_quiet)

OUT_DIR = Path(__file__).parent / "results"  # measured CSVs, committed: the book reads them

SAMPLED = ("ns", "triplet", "sampled_softmax")
FIELDS = ["device", "machine", "model", "n_items", "loss", "optimizer", "graph", "batch", "max_len", "negatives",
          "l2", "repeats", "median_ms", "min_ms", "state_mb", "step_peak_mb", "peak_mb", "speedup_vs_ce_dense",
          "speedup_vs_sparse", "torch", "date"]


# -- one process: build some configurations and time them interleaved ----------------
def build_step(cfg: dict, device: torch.device, warmup: int = 3):
    from srs_core.losses import build_loss
    from srs_core.optim import build_optimizer, embedding_is_sparse
    from srs_core.training.graph import GraphedTrainStep
    from srs_core.training.step import TrainStep

    torch.manual_seed(cfg["seed"])
    with device:  # build the parameters where they live (10M items: no 4 GB CPU detour)
        model = make_model(cfg["model"], cfg["n_items"], cfg["dim"], embedding_is_sparse(cfg["optimizer"]))
    loss_fn = build_loss(cfg["loss"], cfg["n_items"], negatives=cfg["negatives"], device=device)
    l2 = cfg["l2"]
    if cfg["graph"]:
        # eager warm-up calls, then the last warm-up call captures the graph
        graphed = GraphedTrainStep(model, loss_fn, batch_size=cfg["batch"], max_len=cfg["max_len"], l2=l2,
                                   warmup=max(1, warmup - 1))
        return graphed
    opt = build_optimizer(model, cfg["optimizer"], route=cfg.get("route", True))
    gen = torch.Generator(device=device).manual_seed(cfg["seed"])
    return TrainStep(model, loss_fn, opt, l2=l2, generator=gen)


def run_group(configs: list[dict], warmup: int, repeats: int, budget_s: float, device_name: str) -> list[dict]:
    device = torch.device(device_name)
    c0 = configs[0]
    batches = random_batches(8, c0["batch"], c0["max_len"], c0["n_items"], device, seed=c0["seed"])
    steps, state, build_peaks = [], [], []
    for cfg in configs:
        sync(device)
        before = current_mb(device)
        reset_peak(device)
        step = build_step(cfg, device, warmup)
        for i in range(warmup):
            step(*batches[i % len(batches)])
        sync(device)
        steps.append(step)
        state.append(current_mb(device) - before)
        # a CUDA graph keeps its step's temporaries in a private pool that
        # memory_allocated() leaves out (a replay allocates nothing), so for
        # graphed steps the peak seen while building and capturing counts too
        build_peaks.append(peak_mb(device) - before)
    # repeats per config: as many as fit the time budget (at least 3), estimated from one timed step
    want = []
    for step in steps:
        t0 = clock(device)
        step(*batches[0])
        want.append(max(3, min(repeats, int(budget_s / max(clock(device) - t0, 1e-6)))))
    if device.type == "cpu":
        wait_for_quiet(timeout=60)  # a shared machine: start the timed steps in a quiet moment
    times = [[] for _ in configs]
    peaks = [0.0 for _ in configs]
    r = 0
    while any(len(t) < w for t, w in zip(times, want)):
        for i, step in enumerate(steps):
            if len(times[i]) >= want[i]:
                continue
            batch = batches[r % len(batches)]
            base = current_mb(device)
            reset_peak(device)
            t0 = clock(device)
            step(*batch)
            t1 = clock(device)
            peaks[i] = max(peaks[i], peak_mb(device) - base)
            times[i].append((t1 - t0) * 1e3)
        r += 1
    out = []
    for cfg, t, s, p, b in zip(configs, times, state, peaks, build_peaks):
        out.append({**cfg, "repeats": len(t), "median_ms": statistics.median(t), "min_ms": min(t),
                    "state_mb": round(s, 1), "step_peak_mb": round(p, 1),
                    "peak_mb": round(max(s + p, b) if cfg["graph"] else s + p, 1)})
    return out


def check_equivalence(device_name: str, n_items: int, steps: int = 50, model_name: str = "stamp") -> dict:
    """``sparse_fast`` (eager, static, and in a CUDA graph when on CUDA) against
    ``torch.optim.SparseAdam`` over ``steps`` steps with the same negatives:
    ids repeat within a batch and most rows are absent from any one step."""
    import numpy as np

    from srs_core.losses import build_loss
    from srs_core.optim import build_optimizer
    from srs_core.training.graph import GraphedTrainStep
    from srs_core.training.step import TrainStep

    device = torch.device(device_name)
    batch, max_len, k = 128, 25, 100
    rng = np.random.default_rng(0)

    def fresh(sparse):
        torch.manual_seed(0)
        with device:
            return make_model(model_name, n_items, 100, sparse)

    loss_fn = build_loss("ns", n_items, negatives=k, device=device)
    ref = fresh(True)
    variants = {"eager": fresh(True), "static": fresh(True)}
    steps_of = {"ref": TrainStep(ref, loss_fn, build_optimizer(ref, "sparse"), l2=True),
                "eager": TrainStep(variants["eager"], loss_fn, build_optimizer(variants["eager"], "sparse_fast"), l2=True),
                "static": TrainStep(variants["static"], loss_fn,
                                    build_optimizer(variants["static"], "sparse_fast", static_shapes=True), l2=True)}
    graphed = None
    if device.type == "cuda":
        variants["graph"] = fresh(True)
        graphed = GraphedTrainStep(variants["graph"], loss_fn, batch_size=batch, max_len=max_len, l2=True,
                                   warmup=2, sample_in_graph=False)
    for step in range(steps):
        pool = rng.choice(np.arange(1, n_items + 1), size=400, replace=False)  # rows absent from most steps
        lengths = rng.integers(1, max_len + 1, size=batch)
        items = rng.choice(pool, size=(batch, max_len))  # duplicates within the batch
        items[np.arange(max_len)[None, :] >= lengths[:, None]] = 0
        targets = rng.choice(pool, size=batch)
        negatives = rng.choice(pool, size=(batch, k))
        b = [torch.as_tensor(a, dtype=torch.long, device=device) for a in (items, lengths, targets, negatives)]
        for train_step in steps_of.values():
            train_step(*b)
        if graphed is not None:
            graphed(*b)
    sync(device)
    out = {"device": device_name, "n_items": n_items, "steps": steps}
    w_ref = ref.item_embedding.weight
    moved = (w_ref - fresh(True).item_embedding.weight).abs().max().item()
    out["ref_moved"] = moved
    for name, model in variants.items():
        out[f"max_abs_diff_{name}"] = (model.item_embedding.weight - w_ref).abs().max().item()
        out[f"max_abs_diff_rest_{name}"] = max((p - q).abs().max().item() for (n1, p), (n2, q) in
                                               zip(model.named_parameters(), ref.named_parameters())
                                               if "item_embedding" not in n1)
    return out


def train_big(device_name: str, n_items: int, steps: int, model_name: str = "stamp") -> dict:
    """Train STAMP + ns + L2 + sparse_fast (CUDA graph on CUDA) on a catalogue
    of ``n_items`` with a learnable synthetic rule (target = a fixed random
    successor of the last item), report ms/step, memory and the loss curve."""
    import numpy as np

    from srs_core.losses import build_loss
    from srs_core.training.graph import GraphedTrainStep

    device = torch.device(device_name)
    batch, max_len = 128, 25
    torch.manual_seed(0)
    before = current_mb(device)
    with device:
        model = make_model(model_name, n_items, 100, True)
    loss_fn = build_loss("ns", n_items, negatives=100, device=device)
    step = GraphedTrainStep(model, loss_fn, batch_size=batch, max_len=max_len, l2=True, lr=1e-2)
    gen = torch.Generator(device=device).manual_seed(0)
    hot = torch.randint(1, n_items + 1, (20_000,), device=device, generator=gen)  # the items sessions use
    succ = torch.randint(0, hot.numel(), (hot.numel(),), device=device, generator=gen)
    losses = []
    t0 = None
    for i in range(steps):
        pos = torch.randint(0, hot.numel(), (batch, max_len), device=device, generator=gen)
        lengths = torch.randint(1, max_len + 1, (batch,), device=device, generator=gen)
        last = pos.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)
        items = hot[pos].masked_fill(torch.arange(max_len, device=device) >= lengths.unsqueeze(1), 0)
        loss = step(items, lengths, hot[succ[last]])
        if i == 10:
            t0 = clock(device)
        if i % 50 == 0 or i == steps - 1:
            losses.append(round(float(loss), 4))
    ms = (clock(device) - t0) * 1e3 / max(steps - 11, 1)
    return {"n_items": n_items, "steps": steps, "ms_per_step_incl_batch_making": ms,
            "graph": step.graph is not None, "memory_mb": round(peak_mb(device) - before, 1),
            "loss_first": losses[0], "loss_last": losses[-1], "loss_curve": losses}


def worker(spec: str) -> None:
    job = json.loads(spec)
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    kind = job.get("kind", "group")
    if kind == "check":
        out = check_equivalence(job["device"], job["n_items"], job.get("steps", 50))
    elif kind == "train":
        out = train_big(job["device"], job["n_items"], job["steps"])
    else:
        out = run_group(job["configs"], job["warmup"], job["repeats"], job["budget_s"], job["device"])
    print("RESULT " + json.dumps(out), flush=True)


# -- the driver ---------------------------------------------------------------------
def groups(args) -> list[list[dict]]:
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    sizes = [n for n in sizes if n <= args.max_items]
    if args.max_items > max(sizes, default=0):
        sizes.append(int(args.max_items))
    base = dict(model=args.model, batch=args.batch, max_len=args.max_len, negatives=args.negatives, dim=args.dim,
                l2=not args.no_l2, seed=0, graph=False)
    losses = [x for x in args.losses.split(",") if x]
    opts = [x for x in args.optimizers.split(",") if x]
    out = []
    for n in sizes:
        if "ce" in losses and "dense" in opts and n <= args.ce_max_items:
            out.append([dict(base, n_items=n, loss="ce", optimizer="dense")])
        for loss in losses:
            if loss == "ce":
                continue
            group = [dict(base, n_items=n, loss=loss, optimizer=o) for o in opts
                     if not (o == "dense" and n > args.dense_max_items)]
            if torch.device(args.device).type == "cuda" and not args.no_graph and "sparse_fast" in opts:
                group.append(dict(base, n_items=n, loss=loss, optimizer="sparse_fast", graph=True))
            if group:
                out.append(group)
    return out


def run_job(configs, args, **job) -> list[dict] | dict:
    """Run one worker job in a fresh interpreter (clean memory, no state shared)."""
    job = dict(dict(configs=configs, warmup=args.warmup, repeats=args.repeats, budget_s=args.budget,
                    device=args.device, threads=args.threads), **job)
    res = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True)
    lines = [x for x in res.stdout.splitlines() if x.startswith("RESULT ")]
    if res.returncode != 0 or not lines:
        what = configs[0] if configs else job.get("kind")
        raise RuntimeError(f"benchmark worker failed for {what}:\n{res.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def gpu_groups(args) -> list[list[dict]]:
    """The GPU comparison at 1.28M items (MeLi2020's catalogue)."""
    n = 10_000 if args.smoke else 1_280_000
    base = dict(batch=args.batch, max_len=args.max_len, negatives=args.negatives, dim=args.dim, l2=True, seed=0,
                graph=False, n_items=n)
    stamp = dict(base, model="stamp", loss="ns")
    srgnn = dict(base, model="srgnn", loss="ns")
    return [
        [dict(stamp, optimizer="sparse_fast", graph=True), dict(stamp, optimizer="sparse_fast"),
         dict(stamp, optimizer="sparse")],
        [dict(base, model="stamp", loss="ce", optimizer="dense")],
        [dict(srgnn, optimizer="sparse_fast", graph=True), dict(srgnn, optimizer="sparse_fast"),
         dict(srgnn, optimizer="sparse")],
        [dict(base, model="srgnn", loss="ce", optimizer="dense")],
    ]


def gpu_table(args) -> int:
    """Correctness on the device, the comparison table, and a 10M-item run."""
    dev = torch.device(args.device)
    name = machine(dev)
    print(f"device: {name}, torch {torch.__version__}")
    check = run_job([], args, kind="check", n_items=5_000 if args.smoke else 1_280_000, steps=10 if args.smoke else 50)
    worst = max(v for k, v in check.items() if k.startswith("max_abs_diff"))
    print(f"\nsparse_fast vs SparseAdam, {check['steps']} steps at {check['n_items']:,} items: "
          + ", ".join(f"{k[13:]}={v:.2e}" for k, v in check.items() if k.startswith("max_abs_diff"))
          + f" (embeddings moved {check['ref_moved']:.2e}) -> {'OK' if worst < 1e-5 else 'MISMATCH'} (< 1e-5)")
    rows = []
    for configs in gpu_groups(args):
        for r in run_job(configs, args):
            rows.append({"device": args.device, "machine": name, "torch": torch.__version__,
                         "date": dt.date.today().isoformat(), **r})
    add_ratios(rows)
    print(f"\n{'model':<7} {'pairing':<26} {'ms/step':>9} {'vs SparseAdam':>14} {'vs CE dense':>12} {'peak MB':>9}"
          f"   target")
    targets = {("stamp", "ns+sparse_fast+graph"): 1.0, ("srgnn", "ns+sparse_fast+graph"): 2.5}
    for r in rows:
        t = targets.get((r["model"], label(r)))
        verdict = "" if t is None else f"<= {t} ms {'OK' if r['median_ms'] <= t else 'MISSED'}"
        vs_sp = f"{r['speedup_vs_sparse']:.1f}x" if r["speedup_vs_sparse"] != "" else "-"
        vs_ce = f"{r['speedup_vs_ce_dense']:.1f}x" if r["speedup_vs_ce_dense"] != "" else "-"
        print(f"{r['model']:<7} {label(r):<26} {r['median_ms']:>9.3f} {vs_sp:>14} {vs_ce:>12} {r['peak_mb']:>9.0f}"
              f"   {verdict}")
        if r["model"] == "stamp" and label(r) == "ns+sparse_fast+graph":
            print(f"{'':<7} {'':<26} -> a MeLi2020 epoch (4.68M samples, {4_675_443 // args.batch} steps) "
                  f"in {r['median_ms'] * (4_675_443 // args.batch) / 1e3:.0f} s")
    big_n = 100_000 if args.smoke else 10_000_000
    big = run_job([], args, kind="train", n_items=big_n, steps=40 if args.smoke else 2000)
    print(f"\n{big_n:,}-item catalogue, STAMP + ns + L2 + sparse_fast{' in a CUDA graph' if big['graph'] else ''}: "
          f"{big['steps']} steps, {big['ms_per_step_incl_batch_making']:.3f} ms/step (incl. making batches), "
          f"memory {big['memory_mb']:.0f} MB, loss {big['loss_first']} -> {big['loss_last']}")
    out = Path(args.out if args.out != str(OUT_DIR / "sparse_scaling.csv") else OUT_DIR / "gpu_comparison.csv")
    if args.smoke:
        out = out.with_name(out.stem + "_smoke.csv")
    write_csv(out, rows)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"check": check, "big": big, "machine": name}, indent=1))
    os.replace(tmp, out.with_suffix(".json"))
    print(f"\nwrote {out} and {out.with_suffix('.json')}")
    return 0 if worst < 1e-5 else 1


def add_ratios(rows: list[dict]) -> None:
    """Speed-ups against full cross-entropy + dense Adam and against SparseAdam
    (same model, catalogue size and loss)."""
    ce = {(r["model"], r["n_items"]): r["median_ms"] for r in rows if r["loss"] == "ce" and r["optimizer"] == "dense"}
    sp = {(r["model"], r["n_items"], r["loss"]): r["median_ms"] for r in rows
          if r["optimizer"] == "sparse" and not r["graph"]}
    for r in rows:
        key = (r["model"], r["n_items"])
        r["speedup_vs_ce_dense"] = round(ce[key] / r["median_ms"], 2) if key in ce else ""
        key = (r["model"], r["n_items"], r["loss"])
        r["speedup_vs_sparse"] = round(sp[key] / r["median_ms"], 2) if key in sp else ""


def write_csv(out: Path, rows: list[dict]) -> None:
    """Write ``rows`` atomically (a temporary file, then a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, out)


def label(r: dict) -> str:
    """``loss+optimizer``, ``+graph`` for the CUDA-graph step (``+static``: the
    same static-shape step run eagerly, as on CPU)."""
    tail = ("+graph" if str(r.get("device", "")).startswith("cuda") else "+static") if r["graph"] else ""
    return f"{r['loss']}+{r['optimizer']}{tail}"


def print_table(rows: list[dict]) -> None:
    sizes = sorted({r["n_items"] for r in rows})
    labels = list(dict.fromkeys(label(r) for r in rows))
    cell = {(label(r), r["n_items"]): r for r in rows}
    head = f"{'ms/step (median)':<30}" + "".join(f"{n:>12.0e}" for n in sizes)
    print(head)
    for lab in labels:
        line = f"{lab:<30}"
        for n in sizes:
            r = cell.get((lab, n))
            line += f"{r['median_ms']:>12.2f}" if r else f"{'-':>12}"
        print(line)
    print(f"\n{'peak MB':<30}" + "".join(f"{n:>12.0e}" for n in sizes))
    for lab in labels:
        print(f"{lab:<30}" + "".join(f"{cell[(lab, n)]['peak_mb']:>12.0f}" if (lab, n) in cell else f"{'-':>12}"
                                     for n in sizes))


def check_targets(rows: list[dict], device: str) -> list[str]:
    """The CPU targets, as lines of text (the CSV holds the numbers)."""
    lines = []
    fast = [r for r in rows if r["optimizer"] == "sparse_fast" and not r["graph"]]
    big = max((r["n_items"] for r in rows), default=0)
    for r in fast:
        if r["n_items"] == big and r["speedup_vs_ce_dense"] != "":
            ok = r["speedup_vs_ce_dense"] >= 30
            lines.append(f"{r['loss']}+sparse_fast vs ce+dense at {big:.0e}: {r['speedup_vs_ce_dense']:.1f}x "
                         f"(target >= 30x) {'OK' if ok else 'MISSED'}")
    best = {(r["model"], r["n_items"], r["loss"]): r["min_ms"] for r in rows
            if r["optimizer"] == "sparse" and not r["graph"]}
    for r in fast:
        if r["speedup_vs_sparse"] != "":
            ok = r["speedup_vs_sparse"] >= 1.0
            by_min = best[(r["model"], r["n_items"], r["loss"])] / r["min_ms"]
            lines.append(f"{r['loss']}+sparse_fast vs SparseAdam at {r['n_items']:.0e}: {r['speedup_vs_sparse']:.2f}x "
                         f"(fastest steps: {by_min:.2f}x) (target >= 1, aim 1.5) {'OK' if ok else 'SLOWER'}")
    for loss in SAMPLED:
        by_n = {r["n_items"]: r["median_ms"] for r in fast if r["loss"] == loss}
        if 10_000 in by_n and 1_000_000 in by_n:
            g = by_n[1_000_000] / by_n[10_000]
            lines.append(f"{loss}+sparse_fast growth 1e4 -> 1e6: {g:.2f}x (target <= 1.5x) "
                         f"{'OK' if g <= 1.5 else 'MISSED'}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (clocks are read after a device sync)")
    p.add_argument("--model", default="stamp", help="a model of srs_core.models, or 'toy' (a toy encoder: mean and last item, one linear layer)")
    p.add_argument("--sizes", default="1e3,1e4,1e5,1e6", help="catalogue sizes (comma-separated)")
    p.add_argument("--max-items", type=float, default=1e6, help="largest size; above the list adds it (GPU: 1e7)")
    p.add_argument("--ce-max-items", type=float, default=1e7, help="skip full cross-entropy above this size")
    p.add_argument("--dense-max-items", type=float, default=1e7, help="skip sampled+dense above this size")
    p.add_argument("--losses", default="ce,ns,triplet,sampled_softmax")
    p.add_argument("--optimizers", default="dense,sparse,sparse_fast")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--max-len", type=int, default=25)
    p.add_argument("--negatives", type=int, default=100)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--no-l2", action="store_true")
    p.add_argument("--no-graph", action="store_true", help="on CUDA, skip the CUDA-graph configuration")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=60, help="timed steps per configuration (at most)")
    p.add_argument("--budget", type=float, default=8.0, help="seconds of timed steps per configuration "
                   "(slow ones get fewer repeats, never under 3)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--smoke", action="store_true", help="tiny run (1e3, 1e4 items, 3 repeats) to check it works")
    p.add_argument("--gpu-table", action="store_true", help="the GPU comparison of benchmarks/gpu.sh: correctness "
                   "check, STAMP and SR-GNN at 1.28M items, a 10M-item run (with --smoke: small sizes, any device)")
    p.add_argument("--out", default=str(OUT_DIR / "sparse_scaling.csv"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if args.gpu_table:
        if args.smoke:
            args.repeats, args.warmup, args.budget = 3, 3, 1.0
        return gpu_table(args)
    if args.smoke:
        args.sizes, args.max_items, args.repeats, args.warmup, args.budget = "1e3,1e4", 1e4, 3, 1, 1.0
        if args.out == p.get_default("out"):
            args.out = str(OUT_DIR / "sparse_scaling_smoke.csv")
    device = torch.device(args.device)
    rows = []
    stamp = {"device": args.device, "machine": machine(device) if device.type == "cpu" else "",
             "torch": torch.__version__, "date": dt.date.today().isoformat()}
    for configs in groups(args):
        res = run_job(configs, args)
        for r in res:
            rows.append({**stamp, **r})
            print(f"  {label(r):<32} {r['n_items']:>9.0e} items: {r['median_ms']:9.2f} ms  "
                  f"(n={r['repeats']}, peak {r['peak_mb']:.0f} MB)", flush=True)
    if device.type == "cuda":
        name = machine(device)
        for r in rows:
            r["machine"] = name
    add_ratios(rows)
    print()
    print_table(rows)
    print()
    for line in check_targets(rows, args.device):
        print(line)
    out = Path(args.out)
    write_csv(out, rows)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
