"""Batchings: `samples` keeps every old run's batches; `buckets` sees each sample once, in batches of similar length."""
import numpy as np
import pytest
import torch

from srs_core.data.dataset import POOL_BATCHES, ProcessedDataset, batch_order, iter_batches
from srs_core.data.device import DeviceSplit
from srs_core.training import TrainConfig, fit, run_key


def test_samples_batching_is_the_plain_permutation(tiny_dataset):
    split = ProcessedDataset.load(tiny_dataset).train
    _, pos = split.sample_index()
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    order, bounds = batch_order(pos, 128, g1, "samples")
    assert np.array_equal(order, g2.permutation(len(pos)))  # the draw runs made before batchings existed
    assert np.array_equal(bounds, np.r_[np.arange(0, len(pos), 128), len(pos)])
    assert g1.bit_generator.state == g2.bit_generator.state


def test_buckets_see_every_sample_once_in_batches_of_similar_length(tiny_dataset):
    split = ProcessedDataset.load(tiny_dataset).train
    _, pos = split.sample_index()
    order, bounds = batch_order(pos, 32, np.random.default_rng(0), "buckets", max_len=6)
    assert np.array_equal(np.sort(order), np.arange(len(pos)))
    sizes = np.diff(bounds)
    assert (sizes == 32).sum() == len(sizes) - 1 and sizes.sum() == len(pos)  # one partial batch at most
    width = np.minimum(pos, 6)
    spread = [np.ptp(width[order[lo:hi]]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    random_spread = [np.ptp(width[b]) for b in np.array_split(np.random.default_rng(1).permutation(len(pos)),
                                                               len(sizes))]
    assert np.mean(spread) < 0.5 * np.mean(random_spread)
    again, _ = batch_order(pos, 32, np.random.default_rng(0), "buckets", max_len=6)
    assert np.array_equal(order, again)
    # each pool of POOL_BATCHES batches holds the samples of one run of the first permutation
    first = np.random.default_rng(0).permutation(len(pos))[: POOL_BATCHES * 32]
    in_pool = [set(order[lo:hi]) <= set(first) for lo, hi in zip(bounds[:-1], bounds[1:])]
    assert sum(in_pool) == min(POOL_BATCHES, len(sizes))


def test_device_batches_follow_the_same_buckets(tiny_dataset):
    split = ProcessedDataset.load(tiny_dataset).train
    dev = DeviceSplit(split, "cpu", 25)
    order, bounds = batch_order(dev.prefix_lengths, 48, np.random.default_rng(7), "buckets", 25)
    ours = list(dev.batches(dev.order(order), 48, bounds))
    ref = list(iter_batches(split, 48, shuffle=True, generator=np.random.default_rng(7), max_len=25, pad_to=25,
                            batching="buckets"))
    assert len(ours) == len(ref)
    for (items, lengths, targets), b in zip(ours, ref):
        assert torch.equal(items, b.items) and torch.equal(lengths, b.lengths) and torch.equal(targets, b.targets)


def test_batching_is_a_new_key_only_when_it_changes(tiny_dataset, tmp_path):
    base = TrainConfig(data=str(tiny_dataset), model="stamp", epochs=1)
    assert "batching" not in run_key(base)[0]
    bucketed = TrainConfig(data=str(tiny_dataset), model="stamp", epochs=1, batching="buckets")
    assert run_key(bucketed)[0]["batching"] == "buckets" and run_key(bucketed)[1] != run_key(base)[1]
    with pytest.raises(ValueError, match="batching must be one of"):
        TrainConfig(data=str(tiny_dataset), model="stamp", batching="sorted")
    rec = fit(TrainConfig(data=str(tiny_dataset), model="gru4rec", epochs=1, batching="buckets", device="cpu",
                          loss="sampled_softmax", optimizer="sparse_fast", l2=True), tmp_path / "run", quiet=True)
    assert rec["status"] == "complete" and rec["best"]["mrr_at_20"] > 0


@pytest.mark.parametrize("model", ["gru4rec", "narm", "stamp"])
def test_one_pass_gives_every_prefix_the_vector_of_its_own_pass(model):
    from srs_core.models import build_model

    torch.manual_seed(0)
    enc = build_model(model, 60, dim=16).eval()  # eval: NARM's dropout off
    items = torch.tensor([[3, 5, 7, 9, 2, 11], [4, 4, 1, 0, 0, 0], [8, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([6, 3, 1])
    every = enc.forward_all(items, lengths)
    for b in range(3):
        for t in range(int(lengths[b])):
            alone = enc(items[b:b + 1, :t + 1], torch.tensor([t + 1]))[0]
            padded = enc(torch.cat([items[b:b + 1, :t + 1], torch.zeros(1, 4, dtype=torch.long)], 1),
                         torch.tensor([t + 1]))[0]
            assert torch.allclose(every[b, t], alone, atol=1e-6) and torch.allclose(every[b, t], padded, atol=1e-6)


def test_sessions_batches_hold_exactly_the_prefix_samples(tiny_dataset):
    from srs_core.data.sessions import make_session_batch, session_batches

    split = ProcessedDataset.load(tiny_dataset).train
    sess, pos = split.sample_index()
    items = np.asarray(split.items)
    seen = []
    for kind, idx in session_batches(split, 64, np.random.default_rng(5), max_len=6):
        if kind == "samples":  # the prefixes longer than max_len, batched as prefixes
            assert (pos[idx] > 6).all()
            seen += list(zip(sess[idx].tolist(), pos[idx].tolist()))
            continue
        b = make_session_batch(split, idx, max_len=6)
        assert 0 < int((b.targets > 0).sum()) <= 64 or len(idx) == 1
        for row, s in enumerate(idx):
            start, n = split.offsets[s], int(b.lengths[row])
            assert n == min(split.lengths[s] - 1, 6)
            assert np.array_equal(b.items[row, :n].numpy(), items[start:start + n]) and (b.items[row, n:] == 0).all()
            at = np.flatnonzero(b.targets[row].numpy() > 0)
            assert np.array_equal(b.targets[row, at].numpy(), items[start + at + 1])
            seen += [(int(s), int(t) + 1) for t in at]
    assert sorted(seen) == sorted(zip(sess.tolist(), pos.tolist()))  # every sample once, none added
    batches = list(iter_batches(split, 64, shuffle=True, generator=np.random.default_rng(5), max_len=6,
                                batching="sessions"))
    assert sum(int((b.targets > 0).sum()) for b in batches) == len(pos)
    with pytest.raises(ValueError, match="one-pass form, and SR-GNN has none"):
        TrainConfig(data=str(tiny_dataset), model="srgnn", batching="sessions")


def test_sessions_batching_trains_through_srs_train(tiny_dataset, tmp_path):
    from srs_core import cli

    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_dataset), "--model", "narm", "--epochs", "1", "--batching", "sessions",
                     "--loss", "sampled_softmax", "--optimizer", "sparse_fast", "--l2", "--output", str(out)]) in (0, None)
    import json

    rec = json.loads((out / "result.json").read_text())
    assert rec["status"] == "complete" and rec["config"]["batching"] == "sessions" and rec["best"]["mrr_at_20"] > 0
    assert rec["identity"]["batching"] == "sessions"


def test_sessions_batching_is_refused_under_torchrun_before_the_run_is_built(tiny_dataset, tmp_path):
    from srs_core.training.distributed import Dist
    from srs_core.training.loop import Run

    cfg = TrainConfig(data=str(tiny_dataset), model="gru4rec", epochs=1, batching="sessions", loss="sampled_softmax",
                      optimizer="sparse_fast", l2=True)
    run = Run(cfg, tmp_path / "run", Dist(0, 2, 0, "gloo"), torch.device("cpu"), quiet=True)
    with pytest.raises(ValueError, match="--batching buckets"):
        run.setup()
    assert not hasattr(run, "model")  # nothing was built


@pytest.mark.parametrize("logq", ["single", "mixed", "corrected"])
def test_in_batch_negatives_leave_out_the_rows_own_session(logq):
    """In a batch of whole sessions a row's session's other clicks are not
    negatives: sampled softmax with groups equals the loss with those
    candidates left out by hand (each row alone, its partner's target out of its candidates)."""
    from srs_core.losses import build_loss

    torch.manual_seed(0)
    emb = torch.nn.Embedding(31, 8)
    counts = np.r_[0, np.arange(1, 31)]
    loss = build_loss("sampled_softmax", counts=counts, negatives=4, logq=logq)
    session, targets, negatives = torch.randn(4, 8), torch.tensor([3, 7, 9, 12]), torch.tensor([20, 21, 22, 23])
    plain = loss.compute(session, targets, emb, negatives, False)
    loss.groups = torch.tensor([0, 1, 2, 3])  # every row its own session: nothing changes
    assert torch.allclose(loss.compute(session, targets, emb, negatives, False), plain)
    loss.groups = torch.tensor([0, 0, 1, 1])  # rows 0-1 and 2-3 are two sessions
    grouped = loss.compute(session, targets, emb, negatives, False)
    loss.groups = None
    assert not torch.allclose(grouped, plain)
    by_hand = torch.stack([loss.compute(session[[r]], targets[[r]], emb,
                                        torch.cat([targets[[c for c in range(4) if c not in (r, r ^ 1)]], negatives]),
                                        False) for r in range(4)]).mean()
    if logq == "single":  # per row the same candidates, so the mean of the rows alone is the batch's loss
        assert torch.allclose(grouped, by_hand, atol=1e-6)
