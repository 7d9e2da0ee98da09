"""A trained run as a self-contained artifact: the encoder, the item matrix, the ids.

``srs export --run RUN --data DATA --output DIR`` writes:

* ``encoder.pt``, the session encoder as TorchScript, traced from the run's
  weights at its chosen epoch (``torch.jit.load``): right-padded item ids
  ``[B, L]`` and lengths ``[B]`` in, one vector per session out;
* ``items.npy``, the ``[N, d]`` float32 item matrix as evaluation scores with
  it (L2-normalised where the run trained with ``--l2``);
* ``item_ids.txt``, the raw id of item 1..N, one a line;
* ``popular.npy``, the most popular training items (the answer to a session
  with no known item);
* ``meta.json``, the run's configuration, its key, the dataset's content
  hash, and how to score (``l2``, ``max_len``);
* ``recommend.py``, a reader that needs only torch and numpy
  (``python DIR/recommend.py --session "214 87 3301"``).

Why TorchScript: ``torch.jit.trace`` handles all four encoders, and the
traced program is checked against the model on batches of other sizes and
widths before it is written; ``torch.export`` specialises the padded width
of the GRU-based encoders and of SR-GNN's graphs, and ``torch.jit.script``
cannot compile the attention models' optional second output.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from srs_core.recommend import RecommendError, Recommender

FORMAT = "srs-export-1"
#: Shapes (batch, width) the traced encoder is checked on before it is written.
CHECK_SHAPES = ((1, 1), (3, 2), (7, 5), (64, 25), (300, 13))
POPULAR = 1000
READER = Path(__file__).with_name("serving.py")  # copied into the export as recommend.py


def _batch(n_items: int, batch: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (batch,), generator=g)
    items = torch.randint(1, n_items + 1, (batch, width), generator=g)
    items[torch.arange(width) >= lengths.unsqueeze(1)] = 0
    return items, lengths


def trace_encoder(model: torch.nn.Module, n_items: int, max_len: int) -> torch.jit.ScriptModule:
    """The model traced to TorchScript, checked equal to it (1e-5) on every shape of :data:`CHECK_SHAPES`."""
    model = model.cpu().eval()
    example = _batch(n_items, 4, min(3, max_len), 0)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python ints taken from shapes
        traced = torch.jit.trace(model, example, check_trace=False)
        for i, (b, w) in enumerate(CHECK_SHAPES):
            items, lengths = _batch(n_items, b, min(w, max_len), i + 1)
            if not torch.allclose(traced(items, lengths), model(items, lengths), atol=1e-5, rtol=1e-5):
                raise RecommendError(f"the traced {type(model).__name__} differs from the model on a batch of {b} "
                                     f"sessions of width {w}; this encoder cannot be exported as TorchScript")
    return traced


def export_run(run_dir: str | Path, data_dir: str | Path, output: str | Path) -> Path:
    """Write the artifact of run ``run_dir`` (trained on ``data_dir``) to ``output``, atomically."""
    rec = Recommender.from_run(run_dir, data_dir)
    output = Path(output)
    if output.exists() and not (output.is_dir() and (not any(output.iterdir()) or (output / "meta.json").is_file())):
        raise RecommendError(f"{output} exists and is not an export; choose another --output or remove it")
    traced = trace_encoder(rec.model, rec.ds.n_items, rec.config.max_len)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent))
    try:
        torch.jit.save(traced, str(tmp / "encoder.pt"))
        np.save(tmp / "items.npy", rec.candidates.cpu().numpy().astype(np.float32))
        np.save(tmp / "popular.npy", rec.popular[:POPULAR].astype(np.int64))
        (tmp / "item_ids.txt").write_text("\n".join(rec.raw_ids.tolist()) + "\n", encoding="utf-8")
        record = json.loads((Path(run_dir) / "result.json").read_text())
        meta = {"format": FORMAT, "encoder": "torchscript (torch.jit.trace)", "torch": torch.__version__,
                "l2": rec.config.l2, "max_len": rec.config.max_len, "n_items": rec.ds.n_items,
                "dim": int(rec.candidates.shape[1]), "numeric_ids": rec.numeric, "config": record["config"],
                "config_hash": record["config_hash"], "dataset": rec.ds.content_sha256,
                "chosen_epoch": record["best"]["epoch"], "test": {k: record["best"][k] for k in ("p_at_20", "mrr_at_20")},
                "scores": "inner products of the session and item vectors (cosines where l2)"}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(READER, tmp / "recommend.py")
        if output.exists():
            shutil.rmtree(output)
        tmp.replace(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output
