"""From a trained run to recommendations: the API, `srs recommend`, the export, and bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from srs_core.cli import main
from srs_core.data import ProcessedDataset
from srs_core.export import export_run
from srs_core.recommend import RecommendError, Recommender, read_sessions
from srs_core.serving import pad_sessions
from srs_core.training import TrainConfig, fit
from srs_core.training.evaluate import evaluate


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    """A STAMP run with the recommended loss, two epochs, on the tiny synthetic dataset."""
    out = tmp_path_factory.mktemp("run") / "stamp"
    cfg = TrainConfig(data=str(tiny_dataset), model="stamp", loss="sampled_softmax", l2=True, score_scale=10.0,
                      sampling="popularity", optimizer="sparse_fast", epochs=2, device="cpu")
    fit(cfg, out, quiet=True)
    return out, tiny_dataset


def test_the_top_20_agrees_with_the_ranks_evaluation_computes(run):
    run_dir, data = run
    rec = Recommender.from_run(run_dir, data)
    ds = ProcessedDataset.load(data)
    _, ranks = evaluate(rec.model, ds.test, l2=True, return_ranks=True)
    sess, pos = ds.test.sample_index()
    items = np.asarray(ds.test.items)
    starts = ds.test.offsets[sess]
    raw = rec.raw_ids
    prefixes = [raw[items[a:a + p] - 1].tolist() for a, p in zip(starts, pos)]
    targets = raw[items[starts + pos] - 1]
    answers = rec.recommend(prefixes, k=20)
    found = 0
    for r, target, answer in zip(ranks, targets, answers):
        assert len(answer.items) == 20 and not answer.fallback and answer.dropped == 0
        assert answer.scores == sorted(answer.scores, reverse=True)
        if r <= 20:
            assert answer.items[r - 1] == target, (r, target, answer.items)
            found += 1
        else:
            assert target not in answer.items
    assert found == int((ranks <= 20).sum()) > 10
    record = json.loads((run_dir / "result.json").read_text())
    assert found / len(ranks) == pytest.approx(record["best"]["p_at_20"])  # P@20 of the chosen epoch


def test_unknown_items_are_dropped_and_an_unknown_session_gets_the_popular_items(run):
    rec = Recommender.from_run(*run)
    known = rec.raw_ids[:3].tolist()
    a, b = rec.recommend([known + ["999999999"], ["999999998"]], k=5)
    assert a.dropped == 1 and not a.fallback and a.known == known
    assert a.items == rec.recommend([known], k=5)[0].items  # the unknown item changes nothing
    assert b.fallback and b.dropped == 1 and b.items == rec.raw_ids[rec.popular[:5] - 1].tolist()
    seen = rec.recommend([known], k=50, exclude_seen=True)[0]
    assert not set(known) & set(seen.items)


def test_cli_and_api_give_the_same_top_k(run, tmp_path, capsys):
    run_dir, data = run
    rec = Recommender.from_run(run_dir, data)
    sessions = [rec.raw_ids[[5, 9, 2]].tolist(), rec.raw_ids[[40]].tolist(), ["nothing-known"]]
    (tmp_path / "s.txt").write_text("\n".join(" ".join(s) for s in sessions[:2]) + "\n")
    out = tmp_path / "top.csv"
    assert main(["recommend", "--run", str(run_dir), "--data", str(data), "--input", str(tmp_path / "s.txt"),
                 "--output", str(out), "--k", "7", "--quiet"]) == 0
    rows = [ln.split(",") for ln in out.read_text().splitlines()[1:]]
    api = rec.recommend(sessions[:2], k=7)
    assert [r[2] for r in rows] == api[0].items + api[1].items
    assert "wrote the top 7 of 2 sessions" in capsys.readouterr().out
    assert main(["recommend", "--run", str(run_dir), "--data", str(data), "--session", " ".join(sessions[0])]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "3 known item(s)" in printed[0] and [ln.split()[1] for ln in printed[2:]] == \
        rec.recommend(sessions[:1], k=20)[0].items
    # a CSV of session, item, time: items ordered by time within each session
    csv = tmp_path / "log.csv"
    a, b, c = rec.raw_ids[[5, 9, 2]]
    csv.write_text(f"session_id,item_id,timestamp\nx,{b},2\nx,{a},1\nx,{c},3\n")
    names, got = read_sessions(csv)
    assert names == ["x"] and got == [[a, b, c]]


def test_the_export_serves_the_same_top_20_without_the_study_code(run, tmp_path):
    run_dir, data = run
    folder = export_run(run_dir, data, tmp_path / "export")
    rec = Recommender.from_run(run_dir, data)
    sessions = [rec.raw_ids[[i, i + 3, i + 7]].tolist() for i in range(0, 60, 6)] + [["999999999"]]
    (tmp_path / "in.txt").write_text("\n".join(" ".join(s) for s in sessions) + "\n")
    code = ("import sys, runpy; sys.modules['srs_core'] = None; "  # any import of the study's code now fails
            f"sys.argv = ['recommend.py', '--input', {str(tmp_path / 'in.txt')!r}, '--k', '20']; "
            f"runpy.run_path({str(folder / 'recommend.py')!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [ln.split(",") for ln in done.stdout.splitlines()[1:]]
    want = rec.recommend(sessions, k=20)
    for n, w in enumerate(want, 1):
        assert [r[2] for r in rows if r[0] == str(n)] == w.items
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["encoder"].startswith("torchscript") and meta["l2"] is True
    assert np.load(folder / "items.npy").shape == (rec.ds.n_items, 100)


def test_bad_runs_datasets_and_inputs_get_one_line(run, tmp_path, capsys, tiny_dataset):
    run_dir, data = run

    def fails(args, expected):
        assert main(["recommend", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err

    session = ["--session", "1 2"]
    fails(["--run", str(tmp_path / "none"), "--data", str(data), *session], "no run here")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    record = json.loads((run_dir / "result.json").read_text())
    (unfinished / "result.json").write_text(json.dumps({**record, "status": "running"}))
    fails(["--run", str(unfinished), "--data", str(data), *session], "not finished")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "result.json").write_text(json.dumps(record))
    fails(["--run", str(bare), "--data", str(data), *session], "holds no weights of its chosen epoch")
    from srs_core.data.synthetic import synthesize

    other = synthesize("diginetica", 0.02, 1, tmp_path / "other", quiet=True)
    fails(["--run", str(run_dir), "--data", str(other), *session], "is not the dataset")
    (tmp_path / "empty.txt").write_text("\n")
    fails(["--run", str(run_dir), "--data", str(data), "--input", str(tmp_path / "empty.txt"), "--output",
           str(tmp_path / "o.csv")], "empty")
    (tmp_path / "bad.csv").write_text("session,item\na,1\nb\n")
    fails(["--run", str(run_dir), "--data", str(data), "--input", str(tmp_path / "bad.csv"), "--output",
           str(tmp_path / "o.csv")], "line 3: 1 fields where the header has 2")
    fails(["--run", str(run_dir), "--data", str(data), "--session", "12 abc"], "is not a number")
    assert not (tmp_path / "o.csv").exists()
    with pytest.raises(RecommendError, match="k must be at least 1"):
        Recommender.from_run(run_dir, data).recommend([["1"]], k=0)
    assert torch.get_num_threads() >= 1


def test_an_approximate_index_is_optional_and_close_to_the_exact_top_20(run, monkeypatch):
    from srs_core import ann

    run_dir, data = run
    exact = Recommender.from_run(run_dir, data)
    sessions = [exact.raw_ids[[i, i + 1, i + 5]].tolist() for i in range(0, 300, 3)]
    want = np.array([r.items for r in exact.recommend(sessions, k=20)])
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "faiss", None)  # as where faiss is not installed
        with pytest.raises(ValueError, match="pip install faiss-cpu"):
            Recommender.from_run(run_dir, data, index="hnsw")
    pytest.importorskip("faiss")
    approx = Recommender.from_run(run_dir, data, index="hnsw")
    got = np.array([r.items for r in approx.recommend(sessions, k=20)])
    assert ann.recall_at_k(got, want) >= 0.9
    seen = approx.recommend(sessions[:5], k=20, exclude_seen=True)
    assert all(not set(s) & set(r.items) for s, r in zip(sessions, seen))
    # an IVF index that probes every cell scores every item: it must return the exact top 20
    vectors = torch.nn.functional.normalize(exact.model(*pad_sessions([exact.encode(s)[0] for s in sessions], 25)), dim=-1)
    full = ann.ItemIndex(exact.candidates.numpy(), "ivf", nlist=16, nprobe=16)
    ids, _ = full.search(vectors.detach().numpy(), 20)
    assert ann.recall_at_k(exact.raw_ids[ids - 1], want) == 1.0
    assert 0 < ann.recall_at_k(np.array([r.items for r in Recommender.from_run(run_dir, data, index="ivf")
                                         .recommend(sessions, k=20)]), want) <= 1.0
