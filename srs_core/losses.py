"""Every training loss, behind one signature (dissertation Section 2.3 and 4.1).

A loss is called as ``loss(session, targets, embedding, l2)`` and returns the
mean over the batch:

``session``    ``[B, d]`` session embeddings from a model (not yet normalised);
``targets``    ``[B]`` item ids 1..N;
``embedding``  the model's ``nn.Embedding`` (row 0 is padding, never a candidate);
``l2``         Section 4.2's flag, applied through :mod:`srs_core.scoring` only.

The sampled losses draw fresh negatives from their :class:`NegativeSampler`
on every call; ``loss.compute(session, targets, embedding, negatives, l2)``
evaluates the same loss for given negative ids (tests, reproducibility).
:meth:`Loss.draw` is that random part of a call: the negative ids of a
sampled loss, ``sce``'s Gaussian bucket vectors (which ``compute`` then takes
in place of ``negatives``), ``None`` for ``ce`` and ``cce``.
Every item lookup goes through :func:`srs_core.scoring.item_vectors`, so a
sparse embedding table receives a sparse gradient that touches only the
looked-up rows. Full cross-entropy reads the whole table and therefore gives
a dense gradient (see :func:`srs_core.optim.registry.check_combination`);
``sce`` reads it too, but only to choose its buckets, without gradient.

Accidental hits: a sampled negative equal to the row's own target is not a
negative (Section 4.1.2 defines ``y_n`` as "a random label different from
``x_a``'s label"). The ``ns`` and ``triplet`` losses leave such negatives out
of their mean over the k negatives; ``sampled_softmax`` masks them to
``-inf``. With N much larger than k they are rare, so this changes little but
keeps the definitions honest on small catalogues.
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .scoring import all_items, item_vectors, prepare_session, row_scores

DISTRIBUTIONS = ("uniform", "popularity", "mixed")
#: ``sampled_softmax``'s logQ corrections (``--logq``): see :class:`SampledSoftmax`.
LOGQ_MODES = ("single", "mixed", "corrected")


class NegativeSampler:
    """Draws negative item ids in 1..N, fresh on every call (Section 4.1).

    ``distribution="uniform"``: every item equally likely.
    ``distribution="popularity"``: probability proportional to
    ``counts[i] ** alpha`` (word2vec's unigram^0.75 noise distribution);
    ``counts`` has length N + 1 with index 0 the padding id (ignored).
    Items with a zero count are never drawn. ``counts`` is ignored by the
    uniform distribution.
    ``distribution="mixed"`` (an extension): ``(1 - mix) * uniform + mix *
    popularity^alpha``, so every item keeps a floor probability while
    popular items are drawn more often; ``mix=1`` is ``popularity``.

    ``shared=False`` draws ``[B, k]`` ids (each sample its own k negatives);
    ``shared=True`` draws ``[k]`` ids used by the whole batch.

    Sampling is made of plain device ops (``torch.randint``; ``torch.rand`` +
    ``searchsorted`` on a float64 cumulative table), with no host sync, so it
    can run inside a CUDA graph with the default generator.
    """

    def __init__(
        self,
        n_items: int,
        *,
        k: int = 100,
        distribution: str = "uniform",
        alpha: float = 0.75,
        counts: np.ndarray | torch.Tensor | None = None,
        shared: bool = False,
        mix: float = 0.5,
        device: torch.device | str = "cpu",
    ) -> None:
        if n_items < 1:
            raise ValueError(f"n_items must be positive, got {n_items}")
        if k < 1:
            raise ValueError(f"the number of negatives k must be at least 1, got {k}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown negative distribution {distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}"
            )
        self.n_items = int(n_items)
        self.k = int(k)
        self.distribution = distribution
        self.alpha = float(alpha)
        self.mix = float(mix) if distribution == "mixed" else None
        self.shared = bool(shared)
        self.device = torch.device(device)
        self.cdf: torch.Tensor | None = None
        if distribution == "uniform":
            self._log_q = torch.full((self.n_items + 1,), -math.log(self.n_items), dtype=torch.float32)
            self._log_q[0] = -math.inf
        else:
            if counts is None:
                raise ValueError(
                    f"distribution={distribution!r} needs counts: the training frequency of every id 0..N "
                    "(e.g. ProcessedDataset.item_counts())"
                )
            c = torch.as_tensor(np.asarray(counts), dtype=torch.float64).flatten()
            if c.numel() != self.n_items + 1:
                raise ValueError(
                    f"counts must have n_items + 1 = {self.n_items + 1} entries (index 0 is padding), got {c.numel()}"
                )
            if bool((c < 0).any()) or not bool(torch.isfinite(c).all()):
                raise ValueError("counts must be finite and non-negative")
            if alpha < 0:
                raise ValueError(f"alpha must be non-negative, got {alpha}")
            w = c[1:].pow(self.alpha) * (c[1:] > 0)
            total = float(w.sum())
            if total <= 0:
                raise ValueError("counts has no positive entry among items 1..N: nothing to sample")
            p = w / total
            if distribution == "mixed":
                if not 0.0 <= mix <= 1.0:
                    raise ValueError(f"mix must be in [0, 1] (the popularity share of the mixture), got {mix}")
                p = (1.0 - mix) / self.n_items + mix * p
            cdf = torch.cumsum(p, 0)
            self.cdf = cdf / cdf[-1]  # top exactly 1.0, so u in [0, 1) always lands on an item
            log_q = torch.full((self.n_items + 1,), -math.inf, dtype=torch.float64)
            log_q[1:] = torch.log(p)
            self._log_q = log_q.float()
        finite = self._log_q[1:][torch.isfinite(self._log_q[1:])]
        self._log_q_floor = float(finite.min())  # computed once: no host sync while training
        self.to(self.device)

    def to(self, device: torch.device | str) -> "NegativeSampler":
        self.device = torch.device(device)
        self._log_q = self._log_q.to(self.device)
        if self.cdf is not None:
            self.cdf = self.cdf.to(self.device)
        return self

    def shape(self, batch_size: int) -> tuple[int, ...]:
        return (self.k,) if self.shared else (int(batch_size), self.k)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fresh negative ids: ``[batch_size, k]``, or ``[k]`` when shared."""
        shape = self.shape(batch_size)
        if self.cdf is None:
            return torch.randint(1, self.n_items + 1, shape, device=self.device, generator=generator)
        u = torch.rand(shape, dtype=torch.float64, device=self.device, generator=generator)
        pos = torch.searchsorted(self.cdf, u, right=True)
        return pos.clamp_(max=self.n_items - 1).add_(1)

    def log_q(self, ids: torch.Tensor) -> torch.Tensor:
        """Log sampling probability of each id (``-inf`` for padding and for
        items the distribution never draws)."""
        return self._log_q[ids]

    def log_q_correction(self, ids: torch.Tensor) -> torch.Tensor:
        """``log_q`` with never-drawn items raised to the least likely drawn
        item's value, so that a logQ-corrected logit stays finite (an
        in-batch target may have a zero count)."""
        return self._log_q[ids].clamp(min=self._log_q_floor)

    def probabilities(self) -> torch.Tensor:
        """The sampling probability of every id 0..N (0 for padding)."""
        return self._log_q.double().exp()


def _masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [B, k]`` over the entries where ``keep`` (at least one counted)."""
    keep = keep.to(values.dtype)
    return (values * keep).sum(-1) / keep.sum(-1).clamp(min=1.0)


class Loss:
    """Common interface: ``loss(session, targets, embedding, l2) -> scalar``."""

    name: ClassVar[str] = "base"
    sampled: ClassVar[bool] = False
    shared_negatives: ClassVar[bool] = False
    #: whether the ranks' shard losses (:func:`srs_core.training.distributed.shard_loss`)
    #: add up to this loss of the global batch, so that torchrun may train it
    data_parallel: ClassVar[bool] = True

    def __init__(self, sampler: NegativeSampler | None = None, score_scale: float = 1.0) -> None:
        if self.sampled and sampler is None:
            raise ValueError(f"the {self.name!r} loss needs a NegativeSampler")
        if not (math.isfinite(score_scale) and score_scale > 0):
            raise ValueError(f"score_scale must be a positive number, got {score_scale}")
        self.sampler = sampler
        self.score_scale = float(score_scale)

    def session(self, session: torch.Tensor, l2: bool) -> torch.Tensor:
        """The session vectors every score of this loss is made from."""
        return prepare_session(session, l2, self.score_scale)

    def __call__(
        self,
        session: torch.Tensor,
        targets: torch.Tensor,
        embedding: nn.Embedding,
        l2: bool,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        negatives = self.draw(session.shape[0], session.shape[-1], generator)
        return self.compute(session, targets, embedding, negatives, l2)

    def draw(self, batch_size: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """The random part of one call for a batch of ``batch_size`` sessions
        of size ``dim``, passed to ``compute`` as ``negatives``: fresh
        negative ids from the sampler, or ``None`` for a loss without one."""
        return self.sampler.sample(batch_size, generator) if self.sampled else None

    def compute(
        self,
        session: torch.Tensor,
        targets: torch.Tensor,
        embedding: nn.Embedding,
        negatives: torch.Tensor | None,
        l2: bool,
    ) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def shard_negatives(self, targets: torch.Tensor, negatives: torch.Tensor | None, lo: int,
                        hi: int) -> torch.Tensor | None:
        """The negatives of rows ``lo:hi`` of a global batch (data-parallel
        training, :mod:`srs_core.training.distributed`): a ``[B, k]`` draw is
        sliced, a shared ``[k]`` one is kept."""
        if negatives is not None and negatives.dim() == 2:
            return negatives[lo:hi]
        return negatives

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if k != "sampler" and not k.startswith("_")}
        if self.sampler is not None:
            params.update(k=self.sampler.k, distribution=self.sampler.distribution, shared=self.sampler.shared)
        inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({inner})"


class CrossEntropy(Loss):
    """Eqs. 2.15-2.16: softmax cross-entropy over all N items (the traditional method).

    ``scores = prepare_session(s) @ all_items(E, l2).T``; with L2 on these are
    cosines in [-1, 1]. The dissertation's experiment III applied CE with L2
    as is (``score_scale=1``); a larger ``score_scale`` (an extension) is the
    inverse of a softmax temperature.
    Its gradient reaches every item row: use it with the dense optimizer.
    """

    name = "ce"

    def compute(self, session, targets, embedding, negatives, l2):
        if negatives is not None:
            raise ValueError("full cross-entropy uses every item; it takes no negatives")
        scores = self.session(session, l2) @ all_items(embedding, l2).T
        return F.cross_entropy(scores, targets - 1)


class _ChunkedLogits(torch.autograd.Function):
    """Mean cross-entropy of ``s [B, d]`` against rows ``first..`` of
    ``w``, computed over item chunks: the forward keeps a running
    log-sum-exp per row, the backward recomputes each chunk's logits, so no
    ``[B, N]`` tensor is ever held. ``labels`` index rows of ``w``. Rows
    before ``first`` (the padding row) are no candidates and get a zero
    gradient; passing the whole table this way spares autograd a second
    table-sized gradient for a slice. The gradient is the exact one of
    ``F.cross_entropy``."""

    @staticmethod
    def forward(ctx, s, w, labels, chunk, first):
        top = torch.full((s.shape[0],), -math.inf, dtype=s.dtype, device=s.device)
        acc = torch.zeros_like(top)
        for lo in range(first, w.shape[0], chunk):
            z = s @ w[lo : lo + chunk].T
            new_top = torch.maximum(top, z.max(1).values)
            acc = acc * torch.exp(top - new_top) + torch.exp(z - new_top.unsqueeze(1)).sum(1)
            top = new_top
        lse = top + torch.log(acc)
        ctx.save_for_backward(s, w, labels, lse)
        ctx.chunk, ctx.first = chunk, first
        return (lse - (s * w[labels]).sum(1)).mean()

    @staticmethod
    def backward(ctx, grad):
        s, w, labels, lse = ctx.saved_tensors
        scale = grad / s.shape[0]
        gs, gw = torch.zeros_like(s), torch.empty_like(w)
        gw[: ctx.first] = 0
        for lo in range(ctx.first, w.shape[0], ctx.chunk):
            wc = w[lo : lo + ctx.chunk]
            p = torch.exp(s @ wc.T - lse.unsqueeze(1)) * scale  # softmax of the chunk, times dL/dloss / B
            gs += p @ wc
            gw[lo : lo + ctx.chunk] = p.T @ s
        gs -= scale * w[labels]
        gw.index_add_(0, labels, -scale * s)
        return gs, gw, None, None, None


#: ``cce``'s implementations (``--cce-kernel``): ``chunked``, our float32
#: PyTorch autograd function, on any device; ``cut``, the Triton kernel of the
#: ``cut-cross-entropy`` package, on CUDA where that package is installed.
CCE_KERNELS = ("chunked", "cut")


def _cut_linear_cross_entropy():
    """``cut_cross_entropy.linear_cross_entropy`` and the package's version,
    or a ``ValueError`` that says how to get it."""
    try:
        import cut_cross_entropy
    except Exception as exc:  # absent, or present without triton
        raise ValueError(
            "--cce-kernel cut needs the cut-cross-entropy package and its Triton kernels (Linux with CUDA): "
            f"`pip install cut-cross-entropy` ({type(exc).__name__}: {exc}); or use --cce-kernel chunked"
        ) from exc
    return cut_cross_entropy.linear_cross_entropy, getattr(cut_cross_entropy, "__version__", "?")


class ChunkedCrossEntropy(Loss):
    """Exact full cross-entropy without the ``[B, N]`` logits (not in the
    dissertation: the idea of *Cut Your Losses*, Wijmans et al., ICLR 2025).

    The same loss and gradients as ``ce`` (to float rounding), computed in
    item chunks of ``chunk`` rows by a custom autograd function, so the
    loss's memory is ``B x chunk`` scores instead of ``B x N``. The item
    table still gets a dense gradient: use it with the dense optimizer. It
    shows how much of cross-entropy's cost is the logits and how much the
    dense update. ``kernel`` names the implementation that ran (the run
    record keeps it).

    ``kernel="cut"`` (``--cce-kernel cut``) runs the Triton kernel of the
    ``cut-cross-entropy`` package instead, on CUDA only. Its backward pass
    accepts only bf16 or fp16 session vectors (version 25.1.1,
    ``cce_backward.py``), so the session vectors are cast to bf16 (fp16
    would flush the item gradients, about ``1/N``, to zero) and the loss and
    gradients are those of ``ce`` rounded to bf16, not to float32. Its
    gradient filter is off (``filter_eps=None``): no gradient term is
    skipped. It finds the batch's valid rows with ``nonzero()``, a read by
    the host, so a step that uses it is never captured in a CUDA graph.
    """

    name = "cce"
    chunk: ClassVar[int] = 8192  # items per chunk: B x 8192 scores at a time (benchmarks/README.md: memory and time by chunk)

    def __init__(self, score_scale: float = 1.0, kernel: str = "chunked",
                 device: torch.device | str = "cpu") -> None:
        super().__init__(score_scale=score_scale)
        if kernel not in CCE_KERNELS:
            raise ValueError(f"unknown cce kernel {kernel!r} (--cce-kernel); choose one of {', '.join(CCE_KERNELS)}")
        self.kernel_choice = kernel
        self._cut = None
        if kernel == "chunked":
            self.kernel = "chunked-pytorch"
            return
        self.check_device(kernel, device)
        self._cut, version = _cut_linear_cross_entropy()
        self.kernel = f"cut-cross-entropy {version} (bf16 sessions)"

    @staticmethod
    def check_device(kernel: str, device: torch.device | str) -> None:
        """Raise a ``ValueError`` when ``kernel`` cannot run on ``device``
        (training calls it before it writes anything)."""
        if kernel == "cut" and torch.device(device).type != "cuda":
            raise ValueError(f"--cce-kernel cut runs a Triton kernel on CUDA only, and this run is on {device}: "
                             "use --cce-kernel chunked (exact, any device)")

    def compute(self, session, targets, embedding, negatives, l2):
        if negatives is not None:
            raise ValueError("cce uses every item; it takes no negatives")
        s = self.session(session, l2)
        if self._cut is not None:  # rows 1..N (the normalised copy under L2), labels from 0
            items = all_items(embedding, l2) if l2 else embedding.weight[1:]
            return self._cut(s.to(torch.bfloat16), items, targets - 1, reduction="mean", filter_eps=None, impl="cce")
        if l2:  # the normalised copy of rows 1..N
            return _ChunkedLogits.apply(s, all_items(embedding, l2), targets - 1, self.chunk, 0)
        return _ChunkedLogits.apply(s, embedding.weight, targets, self.chunk, 1)


class NegativeSampling(Loss):
    """Eq. 4.1: negative sampling with a mean noise term,
    ``-(log sig(s.y_p) + 1/k sum_i log sig(-s.y_ni))``, averaged over the batch.

    ``negatives`` is ``[B, k]`` (per sample) or ``[k]`` (shared by the batch).
    Negatives equal to the row's target are left out of the mean (module doc).
    """

    name = "ns"
    sampled = True

    def scores(self, session, targets, embedding, negatives, l2):
        """``(positive [B], negatives [B, k], keep [B, k])`` scores of the
        session vectors; ``keep`` is False at accidental hits."""
        s = self.session(session, l2)
        if negatives.dim() == 1:
            pos = (s * item_vectors(embedding, targets, l2)).sum(-1)
            neg = s @ item_vectors(embedding, negatives, l2).T
            keep = negatives.unsqueeze(0) != targets.unsqueeze(1)
        else:
            ids = torch.cat([targets.unsqueeze(1), negatives], 1)  # one lookup [B, 1 + k, d]
            scores = row_scores(embedding, ids, s, l2)
            pos, neg = scores[:, 0], scores[:, 1:]
            keep = negatives != targets.unsqueeze(1)
        return pos, neg, keep

    def compute(self, session, targets, embedding, negatives, l2):
        pos, neg, keep = self.scores(session, targets, embedding, negatives, l2)
        noise = _masked_mean(F.logsigmoid(-neg), keep)
        return -(F.logsigmoid(pos) + noise).mean()


class GeneralisedBCE(NegativeSampling):
    """gBCE (not in the dissertation: Petrov & Macdonald, gSASRec, RecSys 2023):
    binary cross-entropy over the positive and k sampled negatives, with the
    positive's probability raised to the power ``beta``:

    ``loss = (beta softplus(-s.y_p) + sum_i softplus(s.y_ni)) / (1 + k)``, i.e.
    ``-log sig(s.y_p)^beta - sum_i log(1 - sig(s.y_ni))`` averaged over the
    1 + k terms, as the reference code averages over its logits.

    ``beta = alpha (t (1 - 1/alpha) + 1/alpha) = 1 - t (1 - alpha)`` with the
    sampling rate ``alpha = k / (N - 1)`` and the calibration ``t`` in [0, 1]:
    ``t = 0`` is plain BCE, ``t = 1`` gives ``beta = alpha``. The authors
    recommend ``k = 256, t = 0.75``. Accidental hits are left out of the sum
    and of the count, as in ``ns``.

    ``offset=True`` (ours, not the authors'; ``--gbce-offset``) adds the
    constant ``c = log(beta / k)`` to every logit, positive and negatives. A
    model whose scores are all equal minimises the loss at the score ``c``
    (``sig(c) ~ beta / (beta + k)``), so with the offset an untrained model
    starts there and the k negatives' terms no longer pull every score down
    together. Our encoders have no output bias: without the offset they can
    follow that pull only by turning every item vector away from every
    session, which is how gBCE collapses on them (notebook 07-beyond). The
    offset is the same for every item, so the ranking is unchanged and the
    evaluation, which scores without it, is too: it is a prior, like the bias
    initialisation of Lin et al. (focal loss, ICCV 2017).
    """

    name = "gbce"

    def __init__(self, sampler: NegativeSampler, t: float = 0.75, score_scale: float = 1.0,
                 offset: bool = False) -> None:
        super().__init__(sampler, score_scale)
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"the gBCE calibration t (--gbce-t) must lie in [0, 1], got {t}")
        if sampler.n_items < 2:
            raise ValueError("gBCE needs at least 2 items")
        self.t = float(t)
        alpha = sampler.k / (sampler.n_items - 1)
        self.beta = 1.0 - self.t * (1.0 - alpha)  # = alpha (t (1 - 1/alpha) + 1/alpha), without its rounding
        self.offset = math.log(self.beta / sampler.k) if offset else 0.0

    def compute(self, session, targets, embedding, negatives, l2):
        pos, neg, keep = self.scores(session, targets, embedding, negatives, l2)
        if self.offset:
            pos, neg = pos + self.offset, neg + self.offset
        keep = keep.to(neg.dtype)
        total = self.beta * F.softplus(-pos) + (F.softplus(neg) * keep).sum(-1)
        return (total / (1.0 + keep.sum(-1))).mean()


class Triplet(Loss):
    """Eq. 4.2: triplet loss against item embeddings,
    ``max(0, m + ||s - y_p|| - ||s - y_n||)``.

    With k negatives per sample the loss of a sample is the mean over its k
    triplets (negatives equal to the target left out, module doc), then the
    mean over the batch. Distances are Euclidean (not squared), computed
    directly from the differences so the gradient stays finite at zero
    distance. The margin is not given in the dissertation; the default
    ``margin=0.5`` suits unit vectors under L2 (distances in [0, 2]). A
    ``score_scale`` S multiplies every distance by S, which is the same as
    dividing the margin by S.
    """

    name = "triplet"
    sampled = True

    def __init__(self, sampler: NegativeSampler, margin: float = 0.5, score_scale: float = 1.0) -> None:
        super().__init__(sampler, score_scale)
        if not math.isfinite(margin) or margin < 0:
            raise ValueError(f"margin must be a finite non-negative number, got {margin}")
        self.margin = float(margin)

    def compute(self, session, targets, embedding, negatives, l2):
        s = prepare_session(session, l2)  # unit vectors: the scale applies to the distances below
        if negatives.dim() == 1:
            d_pos = (s - item_vectors(embedding, targets, l2)).norm(dim=-1)
            y = item_vectors(embedding, negatives, l2)
            # ||s - y||^2 = |s|^2 + |y|^2 - 2 s.y as one [B, k] matmul, not a [B, k, d] difference
            sq = (s * s).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(0) - 2.0 * (s @ y.T)
            d_neg = sq.clamp(min=1e-12).sqrt()
            keep = negatives.unsqueeze(0) != targets.unsqueeze(1)
        else:
            ids = torch.cat([targets.unsqueeze(1), negatives], 1)
            dist = (s.unsqueeze(1) - item_vectors(embedding, ids, l2)).norm(dim=-1)  # [B, 1 + k]
            d_pos, d_neg = dist[:, 0], dist[:, 1:]
            keep = negatives != targets.unsqueeze(1)
        if self.score_scale != 1.0:  # S ||s - y||: the distance between the scaled vectors
            d_pos, d_neg = d_pos * self.score_scale, d_neg * self.score_scale
        hinge = F.relu(self.margin + d_pos.unsqueeze(1) - d_neg)
        return _masked_mean(hinge, keep).mean()


class SampledSoftmax(Loss):
    """Sampled softmax with logQ correction (not in the dissertation: Bengio &
    Senecal 2008; Yi et al. 2019; the official GRU4Rec).

    Candidates for every row: the batch's B targets followed by k negatives
    shared by the batch. A candidate equal to the row's target, other than
    the row's own positive column, is an accidental hit and is masked to
    ``-inf``. How the logits are corrected is ``logq`` (``--logq``):

    ``"single"`` (the default, the behaviour before the option existed):
    ``logit(b, c) = s_b . y_c - log q(c)`` for every candidate, the positive
    included, where ``q`` is the sampler's distribution (uniform or
    popularity^alpha) for both the sampled negatives and the in-batch targets
    (in-batch targets arrive roughly by popularity; using the same q keeps one
    well-defined correction). The loss is the cross-entropy with the row's
    own column (``b``) as the label.

    ``"mixed"`` (mixed negative sampling, Yang et al., WWW 2020 Companion):
    each candidate is corrected by the distribution of its own source. The
    in-batch targets (the row's own positive included) arrive by the
    training popularity ``p(i) = counts(i) / sum(counts)`` and get
    ``s_b . y_c - log p(c)``; the k sampled negatives get ``s_b . y_c -
    log q(c)``. Each corrected term ``exp(s . y) / q_source`` estimates the
    same sum over the catalogue, so no factor for the sources' sizes enters.
    The loss is the same cross-entropy.

    ``"corrected"`` (Khrylchenko et al., "Correcting the LogQ Correction",
    RecSys 2025, arXiv 2507.09331, as in the authors' code,
    github.com/NonameUntitled/logq, ``train_mns_log_new.py``): the positive
    is always in the softmax, never Monte-Carlo sampled, so it leaves the
    sampled estimate of the denominator. With ``p_b`` the row's target and
    ``q_src`` the source of candidate ``j`` (``p`` for in-batch targets, the
    sampler's ``q`` for the sampled ones), a negative (every candidate other
    than ``p_b``) is drawn from ``q_src(j) / (1 - q_src(p_b))`` (the accidental
    hits masked out), and

    ``z_bj = s_b . y_j - log(q_src(j) / (1 - q_src(p_b)))``,
    ``L_b = logsumexp_j z_bj - s_b . y_p`` (the positive uncorrected and out
    of the denominator),
    ``w_b = sg(1 - P_b)`` with ``P_b = exp(s_b . y_p) / (exp(s_b . y_p) +
    mean_j exp(z_bj))``, the model's estimated probability of the positive
    (``sg``: no gradient), and the loss is ``mean_b w_b L_b``. Its gradient
    is the full softmax's, ``(1 - P_b) (grad log Z_neg - grad s_b . y_p)``,
    with ``Z_neg`` estimated by importance sampling. A row whose candidates
    are all its own target has no negative and adds 0 (as in ``single``,
    where its cross-entropy over the positive alone is 0). The authors' code
    corrects every negative by the popularity; here each source keeps its
    own distribution, as in ``mixed``.

    ``mixed`` and ``corrected`` need ``counts`` (the training frequency of
    every id 0..N); an in-batch target with a zero count is corrected as the
    least frequent counted item. The last ``k`` entries of ``negatives`` are
    the sampled ones; entries before them are further in-batch targets (the
    other ranks' rows under torchrun, :meth:`shard_negatives`).
    """

    name = "sampled_softmax"
    sampled = True
    shared_negatives = True

    def __init__(self, sampler: NegativeSampler, score_scale: float = 1.0, logq: str = "single",
                 counts: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__(sampler, score_scale)
        if logq not in LOGQ_MODES:
            raise ValueError(f"unknown logQ correction {logq!r} (--logq); choose one of {', '.join(LOGQ_MODES)}")
        self.logq = logq
        self._pop: torch.Tensor | None = None  # p(i) of ids 0..N (0 for padding)
        self._log_pop: torch.Tensor | None = None  # log p(i), zero counts raised to the least counted item's
        if logq == "single":
            return
        if counts is None:
            raise ValueError(
                f"sampled_softmax with logq={logq!r} corrects the in-batch targets by their training popularity: "
                "it needs counts, the training frequency of every id 0..N (e.g. ProcessedDataset.item_counts()); "
                "or use logq='single' (--logq single)"
            )
        c = torch.as_tensor(np.asarray(counts), dtype=torch.float64).flatten()
        if c.numel() != sampler.n_items + 1:
            raise ValueError(
                f"counts must have n_items + 1 = {sampler.n_items + 1} entries (index 0 is padding), got {c.numel()}"
            )
        if bool((c < 0).any()) or not bool(torch.isfinite(c).all()):
            raise ValueError("counts must be finite and non-negative")
        total = float(c[1:].sum())
        if total <= 0:
            raise ValueError(f"counts has no positive entry among items 1..N: logq={logq!r} has no popularity to use")
        pop = c / total
        pop[0] = 0.0
        log_pop = torch.log(pop)
        floor = float(log_pop[1:][pop[1:] > 0].min())
        self._pop = pop.float().to(sampler.device)
        self._log_pop = log_pop.clamp(min=floor).float().to(sampler.device)

    def shard_negatives(self, targets, negatives, lo, hi):
        """One process scores every row against all B targets + k negatives;
        the other rows' targets join the shared candidates (same set, the same
        accidental-hit mask, the row's own target stays its label)."""
        return torch.cat([targets[:lo], targets[hi:], super().shard_negatives(targets, negatives, lo, hi)])

    def compute(self, session, targets, embedding, negatives, l2):
        if negatives.dim() != 1:
            raise ValueError(
                f"sampled_softmax uses negatives shared by the batch, shape [k]; got {tuple(negatives.shape)}"
            )
        if self.logq != "single":
            return self._per_source(session, targets, embedding, negatives, l2)
        batch = targets.shape[0]
        s = self.session(session, l2)
        cand = torch.cat([targets, negatives])  # [B + k]
        logits = s @ item_vectors(embedding, cand, l2).T - self.sampler.log_q_correction(cand).to(s.dtype)
        own = torch.arange(batch, device=targets.device)
        hit = cand.unsqueeze(0) == targets.unsqueeze(1)
        # (b, b) is the row's own positive: keep it. A plain fill, no indexed
        # write (which would copy a host value and break CUDA-graph capture).
        hit.diagonal().fill_(False)
        logits = logits.masked_fill(hit, -math.inf)
        return F.cross_entropy(logits, own)

    def _per_source(self, session, targets, embedding, negatives, l2):
        """``logq="mixed"`` and ``"corrected"`` (class doc)."""
        batch, k = targets.shape[0], self.sampler.k
        if negatives.numel() < k:
            raise ValueError(
                f"sampled_softmax with logq={self.logq!r} reads the last k = {k} negatives as the sampled ones; "
                f"got {negatives.numel()}"
            )
        s = self.session(session, l2)
        cand = torch.cat([targets, negatives])  # [B' + k]: in-batch targets (this batch's first), then sampled
        n_batch = cand.numel() - k
        scores = s @ item_vectors(embedding, cand, l2).T
        log_q = torch.cat([self._log_pop[cand[:n_batch]], self.sampler.log_q_correction(cand[n_batch:])]).to(s.dtype)
        own = torch.arange(batch, device=targets.device)
        same = cand.unsqueeze(0) == targets.unsqueeze(1)  # [B, B' + k]: the row's own target, wherever it stands
        if self.logq == "mixed":
            hit = same.clone()
            hit.diagonal().fill_(False)  # the row's own positive column stays (see compute)
            return F.cross_entropy((scores - log_q).masked_fill(hit, -math.inf), own)
        # corrected: negatives drawn from q_src(j) / (1 - q_src(p_b)); the positive uncorrected, out of the denominator
        pos = scores.diagonal()
        q_pos = torch.stack([self._pop[targets], self.sampler.log_q(targets).exp()], 1).to(s.dtype)  # [B, 2]
        log_rest = torch.log1p(-q_pos.clamp(max=1.0 - 1e-6))  # log(1 - q_src(p_b)) of each source
        from_batch = torch.arange(cand.numel(), device=cand.device) < n_batch
        z = scores - log_q + torch.where(from_batch.unsqueeze(0), log_rest[:, :1], log_rest[:, 1:])
        z = z.masked_fill(same, -math.inf)
        n_neg = (~same).sum(1)
        has_neg = n_neg > 0
        z = torch.where(has_neg.unsqueeze(1), z, torch.zeros_like(z))  # a finite stand-in; such rows add 0 below
        per_row = torch.logsumexp(z, 1) - pos
        weight = torch.sigmoid(per_row - torch.log(n_neg.clamp(min=1).to(s.dtype))).detach()  # 1 - P_b
        return (weight * per_row * has_neg).mean()


class ScalableCrossEntropy(Loss):
    """SCE, scalable cross-entropy (not in the dissertation: Mezentsev et al.,
    "Scalable Cross-Entropy Loss for Sequential Recommendations with Large
    Item Catalogs", RecSys 2024, arXiv 2409.18721; reference code: RePlay,
    ``replay/models/nn/loss/sce.py``).

    Cross-entropy over the hard negatives that a random-projection bucketing
    finds (an approximate maximum-inner-product search). Per batch,
    ``n_buckets`` Gaussian vectors ``w_j`` (``[n_buckets, d]``, drawn by
    :meth:`draw` from the step's generator) each take the ``bucket_size``
    sessions of the batch and the ``bucket_size`` items of the whole table
    (rows 1..N) with the largest inner products ``w_j . s_b`` and ``w_j .
    y_i``: sessions and items that point the same way, whose scores dominate
    the softmax. The selection uses the scoring vectors (L2-normalised and
    scaled as in every loss) and takes no gradient. Bucket j gives each of
    its sessions b, with target p,

    ``ce_j(b) = log(exp(s_b . y_p) + sum_{i in bucket j, i != p} exp(s_b . y_i)) - s_b . y_p``

    (selected items equal to ``p`` are accidental hits and are masked; the
    positive's column is added once). Reduction, as RePlay's: a session in
    several buckets keeps its largest ``ce_j`` (its hardest negatives), and
    the loss is the mean over the sessions that at least one bucket took. A
    session in no bucket adds nothing this step (no value, no gradient),
    rather than a cross-entropy over its positive alone, which would be 0 and
    only dilute the mean. ``bucket_size`` is clamped to B for the sessions and
    to N for the items, so with one bucket and ``bucket_size >= max(B, N)``
    this is full cross-entropy.

    Differences from RePlay: one ``bucket_size`` for sessions and items
    (RePlay: ``bucket_size_x``, ``bucket_size_y``); no ``mix_x`` option; the
    bucket vectors are not scaled by ``d ** -0.25`` (the top-k is the same);
    RePlay leaves out sessions whose loss is exactly 0 as "not selected",
    here the selection itself is tracked.

    ``compute(session, targets, embedding, buckets, l2)`` takes the bucket
    vectors in place of ``negatives``. Items are looked up only through
    :func:`~srs_core.scoring.item_vectors` (the targets and the selected
    rows), so the item table's gradient touches only those rows and every
    optimizer works (dense, sparse, sparse_fast); the selection reads the
    whole table without gradient, ``n_buckets x N x d`` multiply-adds per
    step. Not for CUDA graphs or torchrun (see
    :func:`srs_core.training.graph.graph_support` and ``data_parallel``): a
    bucket takes the top sessions of the whole batch, which one rank's
    shard cannot see.
    """

    name = "sce"
    data_parallel = False

    def __init__(self, n_buckets: int = 8, bucket_size: int = 256, score_scale: float = 1.0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(score_scale=score_scale)
        if isinstance(n_buckets, bool) or int(n_buckets) != n_buckets or n_buckets < 1:
            raise ValueError(f"sce needs at least one bucket (--sce-buckets), got {n_buckets}")
        if isinstance(bucket_size, bool) or int(bucket_size) != bucket_size or bucket_size < 1:
            raise ValueError(f"sce's bucket size (--sce-bucket-size) must be a positive integer, got {bucket_size}")
        self.n_buckets = int(n_buckets)
        self.bucket_size = int(bucket_size)
        self.device = torch.device(device)

    def draw(self, batch_size, dim, generator=None):
        """``n_buckets`` fresh Gaussian bucket vectors ``[n_buckets, dim]``."""
        return torch.randn((self.n_buckets, int(dim)), generator=generator, device=self.device)

    def compute(self, session, targets, embedding, negatives, l2):
        buckets = negatives
        if buckets is None or buckets.dim() != 2 or buckets.shape[1] != session.shape[-1]:
            got = None if buckets is None else tuple(buckets.shape)
            raise ValueError(
                f"sce takes its bucket vectors [n_buckets, d = {session.shape[-1]}] in place of negatives, got {got}: "
                "call the loss (it draws them) or pass loss.draw(batch_size, d, generator)"
            )
        s = self.session(session, l2)
        batch, n_items = s.shape[0], embedding.num_embeddings - 1
        size_x, size_y = min(self.bucket_size, batch), min(self.bucket_size, n_items)
        pos = (s * item_vectors(embedding, targets, l2)).sum(-1)  # [B]
        with torch.no_grad():  # which sessions and items share a bucket: no gradient through the choice
            w = buckets.to(device=s.device, dtype=s.dtype)
            top_x = torch.topk(w @ s.T, size_x, dim=1).indices  # [n_b, size_x] rows of the batch
            top_y = torch.topk(w @ all_items(embedding, l2).T, size_y, dim=1).indices + 1  # [n_b, size_y] item ids
        neg = torch.bmm(s[top_x], item_vectors(embedding, top_y, l2).transpose(1, 2))  # [n_b, size_x, size_y]
        neg = neg.masked_fill(targets[top_x].unsqueeze(-1) == top_y.unsqueeze(1), -math.inf)
        p = pos[top_x]
        ce = torch.logsumexp(torch.cat([p.unsqueeze(-1), neg], -1), -1) - p  # [n_b, size_x]
        rows = top_x.flatten()
        per_session = torch.zeros_like(pos).scatter_reduce(0, rows, ce.flatten(), "amax", include_self=False)
        taken = torch.zeros(batch, dtype=s.dtype, device=s.device).index_fill(0, rows, 1.0)
        return (per_session * taken).sum() / taken.sum()


#: Loss name (as used by ``srs train --loss``) -> loss class.
LOSSES: dict[str, type[Loss]] = {
    "ce": CrossEntropy,
    "cce": ChunkedCrossEntropy,
    "ns": NegativeSampling,
    "gbce": GeneralisedBCE,
    "triplet": Triplet,
    "sampled_softmax": SampledSoftmax,
    "sce": ScalableCrossEntropy,
}


def build_loss(
    name: str,
    n_items: int | None = None,
    *,
    negatives: int = 100,
    margin: float = 0.5,
    distribution: str = "uniform",
    alpha: float = 0.75,
    counts: np.ndarray | None = None,
    score_scale: float = 1.0,
    shared_negatives: bool = False,
    mix: float = 0.5,
    gbce_t: float = 0.75,
    gbce_offset: bool = False,
    logq: str = "single",
    cce_kernel: str = "chunked",
    sce_buckets: int = 8,
    sce_bucket_size: int = 256,
    device: torch.device | str = "cpu",
) -> Loss:
    """The loss ``name`` (one of :data:`LOSSES`) with its own negative sampler.

    ``negatives`` (k), ``distribution``, ``alpha``, ``mix`` and ``counts``
    configure the sampler of the sampled losses; ``margin`` is the triplet
    margin; ``gbce_t`` is gBCE's calibration t and ``gbce_offset`` its
    constant logit offset (:class:`GeneralisedBCE`); ``cce_kernel`` is one of
    :data:`CCE_KERNELS` (:class:`ChunkedCrossEntropy`); ``logq`` is ``sampled_softmax``'s
    logQ correction (:data:`LOGQ_MODES`; ``mixed`` and ``corrected`` read
    ``counts``); ``sce_buckets`` and ``sce_bucket_size`` are SCE's bucketing;
    ``score_scale`` multiplies L2-normalised scores in every loss.
    ``shared_negatives=True`` (an extension) gives ``ns`` and ``triplet`` one
    set of k negatives for the whole batch, so k can grow at the cost of k
    row lookups instead of B x k; ``sampled_softmax`` always shares them.
    ``n_items`` defaults to ``len(counts) - 1``.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    cls = LOSSES[name]
    if logq != "single" and cls is not SampledSoftmax:
        raise ValueError(f"logq={logq!r} (--logq) corrects sampled_softmax's logits; the {name!r} loss has none: "
                         "leave it at 'single'")
    if cce_kernel != "chunked" and cls is not ChunkedCrossEntropy:
        raise ValueError(f"cce_kernel={cce_kernel!r} (--cce-kernel) chooses how cce runs, not {name!r}: "
                         "leave it at 'chunked'")
    if not cls.sampled:
        if shared_negatives:
            raise ValueError(f"shared_negatives applies to the sampled losses, not {name!r} (it draws no negatives)")
        if cls is ScalableCrossEntropy:
            return ScalableCrossEntropy(sce_buckets, sce_bucket_size, score_scale=score_scale, device=device)
        if cls is ChunkedCrossEntropy:
            return ChunkedCrossEntropy(score_scale=score_scale, kernel=cce_kernel, device=device)
        return cls(score_scale=score_scale)
    if n_items is None:
        if counts is None:
            raise ValueError(f"the {name!r} loss needs n_items (or counts, of length n_items + 1) to sample negatives")
        n_items = len(counts) - 1
    elif counts is not None and len(counts) != n_items + 1:
        raise ValueError(f"counts has {len(counts)} entries but n_items + 1 = {n_items + 1}")
    sampler = NegativeSampler(
        n_items,
        k=negatives,
        distribution=distribution,
        alpha=alpha,
        counts=counts,
        shared=cls.shared_negatives or shared_negatives,
        mix=mix,
        device=device,
    )
    if cls is Triplet:
        return Triplet(sampler, margin=margin, score_scale=score_scale)
    if cls is GeneralisedBCE:
        return GeneralisedBCE(sampler, t=gbce_t, score_scale=score_scale, offset=gbce_offset)
    if cls is SampledSoftmax:
        return SampledSoftmax(sampler, score_scale=score_scale, logq=logq, counts=counts)
    return cls(sampler, score_scale=score_scale)
