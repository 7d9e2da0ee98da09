"""Data-parallel training under torchrun: 2 gloo processes on CPU
train the same global batches as one process and end where it ends.

Tolerance: the ranks sum their gradients in another order than one process
(and pad their batches to max_len), so the two runs differ by float
rounding only: weights within 1e-5, epoch losses within 1e-5 relative,
P@20 and MRR@20 within 1e-6 (measured: about 1e-7 for the weights).
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from srs_core.training.distributed import Dist, shard_loss, shard_rows
from srs_core.losses import build_loss
from srs_core.training import TrainConfig, fit

from test_train import write_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # about 70 samples: two batches of 32 and a partial one
    return write_dataset(tmp_path_factory.mktemp("ddp") / "data", n_items=40, n_train=20, n_test=20, seed=3)


def torchrun(nproc: int, *args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "srs_core.cli", "train", *args]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]


@pytest.mark.parametrize("loss, graph", [("ns", "auto"), ("sampled_softmax", "on")])
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tiny, tmp_path, loss, graph):
    flags = dict(model="stamp", loss=loss, optimizer="sparse_fast", l2=True, epochs=1, batch_size=32, dim=8,
                 negatives=5, seed=1)
    torchrun(2, "--data", str(tiny), "--device", "cpu", "--graph", graph, "--output", str(tmp_path / "ddp"), "--quiet",
             *[x for k, v in flags.items() if k != "l2" for x in (f"--{k.replace('_', '-')}", str(v))], "--l2")
    two = json.loads((tmp_path / "ddp" / "result.json").read_text())
    one = fit(TrainConfig(data=str(tiny), device="cpu", **flags), tmp_path / "one", quiet=True)

    assert two["status"] == "complete" and two["environment"]["world_size"] == 2
    assert two["environment"]["distributed_backend"] == "gloo"
    assert two["config_hash"] == one["config_hash"]
    for a, b in zip(one["epochs"], two["epochs"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["p_at_20"] == pytest.approx(a["p_at_20"], abs=1e-6)
        assert b["mrr_at_20"] == pytest.approx(a["mrr_at_20"], abs=1e-6)
    w1 = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)
    w2 = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    for k in w1["model"]:
        torch.testing.assert_close(w2["model"][k], w1["model"][k], atol=1e-5, rtol=0)
    # the same Adam steps (the partial batch included) and the same random streams afterwards
    assert w2["optimizer"]["optimizers"]["embedding"]["step"] == w1["optimizer"]["optimizers"]["embedding"]["step"]
    assert torch.equal(w2["rng"]["torch"], w1["rng"]["torch"])
    assert w2["rng"]["numpy"] == w1["rng"]["numpy"]


@pytest.mark.parametrize("loss, shared", [("ns", False), ("ns", True), ("triplet", False), ("sampled_softmax", False),
                                          ("ce", False)])
@pytest.mark.parametrize("world", [2, 3])
def test_shard_losses_sum_to_the_global_batch_loss(loss, shared, world):
    """No processes needed: the ranks' weighted shard losses add up to one
    process's loss (sampled_softmax: every row still sees all B targets)."""
    torch.manual_seed(0)
    n_items, b = 30, 10
    fn = build_loss(loss, n_items, negatives=4, shared_negatives=shared)
    emb = torch.nn.Embedding(n_items + 1, 6, padding_idx=0)
    session = torch.randn(b, 6)
    targets = torch.randint(1, n_items + 1, (b,))
    targets[3] = targets[7]  # an in-batch duplicate: an accidental hit for sampled_softmax
    negatives = fn.sampler.sample(b) if fn.sampled else None
    full = fn.compute(session, targets, emb, negatives, True)
    parts = []
    for rank in range(world):
        lo, hi = shard_rows(b, Dist(rank, world, rank, "gloo"))
        parts.append(shard_loss(fn, session[lo:hi], targets, emb, negatives, True, (lo, hi)))
    torch.testing.assert_close(torch.stack(parts).sum(), full, atol=1e-6, rtol=1e-6)


def test_shards_cover_the_batch_once():
    for n in (1, 7, 32, 33):
        for world in (1, 2, 3, 4):
            rows = [shard_rows(n, Dist(r, world, r, "gloo")) for r in range(world)]
            assert rows[0][0] == 0 and rows[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
            assert max(h - l for l, h in rows) - min(h - l for l, h in rows) <= 1
