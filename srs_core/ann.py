"""Approximate top-k over the item matrix, with faiss (an optional extra).

The exact ranking (:func:`srs_core.serving.top_items`) reads every item
vector for every query. For large catalogues an inner-product index answers
from a fraction of them, at the price of some of the true top-k:

* ``ivf``: the items are clustered into ``nlist`` cells (k-means over the item
  vectors; by default 4 sqrt(N)); a query scores the items of its ``nprobe``
  closest cells (by default a tenth of them);
* ``hnsw``: a navigable small-world graph over the items, searched greedily
  with a candidate list of ``ef_search``.

``pip install faiss-cpu`` (or ``pip install -e .[ann]``) provides faiss; the
exact path stays the default and needs nothing. :func:`recall_at_k` measures
what an index loses against the exact top-k (``benchmarks/bench_recommend.py``).
"""
from __future__ import annotations

import numpy as np

INDEXES = ("exact", "ivf", "hnsw")


def faiss_module():
    """The faiss package, or a ``ValueError`` that says how to install it."""
    try:
        import faiss
    except ImportError:
        raise ValueError("an approximate index (--index ivf or hnsw) needs faiss: `pip install faiss-cpu` "
                         "(or `pip install -e .[ann]`); or use the exact ranking (--index exact)") from None
    return faiss


class ItemIndex:
    """An inner-product index over item vectors ``[N, d]`` (rows of items 1..N)."""

    def __init__(self, items: np.ndarray, kind: str = "hnsw", *, nlist: int | None = None, nprobe: int | None = None,
                 m: int = 32, ef_search: int = 128, seed: int = 0) -> None:
        if kind not in INDEXES[1:]:
            raise ValueError(f"unknown index {kind!r}; choose one of {', '.join(INDEXES[1:])} (or exact, no index)")
        faiss = faiss_module()
        x = np.ascontiguousarray(items, dtype=np.float32)
        n, d = x.shape
        self.kind = kind
        if kind == "ivf":
            nlist = nlist or max(1, int(4 * np.sqrt(n)))
            nprobe = nprobe or max(8, nlist // 10)  # about a tenth of the items scored per query
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.cp.seed = seed
            self.index.train(x)
            self.index.nprobe = nprobe
            self.setting = f"nlist={nlist}, nprobe={nprobe}"
        else:
            self.index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = max(40, 2 * m)
            self.index.hnsw.efSearch = ef_search
            self.setting = f"M={m}, efSearch={ef_search}"
        self.index.add(x)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ids (1..N) and scores of about the ``k`` best items for each row of ``vectors``."""
        scores, idx = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return idx.astype(np.int64) + 1, scores


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """The mean share of each row's exact top-k ids that the approximate top-k holds."""
    hits = [len(set(a.tolist()) & set(e.tolist())) / max(len(e), 1) for a, e in zip(approx, exact)]
    return float(np.mean(hits)) if hits else float("nan")
