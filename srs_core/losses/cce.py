"""Exact cross-entropy computed in item chunks, without the [B, N] logits (not in the dissertation)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from srs_core.scoring import all_items

from .base import Loss
from .options import LossOptions, one_of, option

#: ``cce``'s implementations (``--cce-kernel``): ``chunked``, our float32 autograd function, on any
#: device; ``cut``, the Triton kernel of the ``cut-cross-entropy`` package, on CUDA where it is installed.
CCE_KERNELS = ("chunked", "cut")


@dataclass(frozen=True)
class CCEOptions(LossOptions):
    """Which implementation runs the loss."""

    cce_kernel: str = option("chunked", "cce: chunked, our exact float32 implementation in item chunks (any device; "
                             "default); cut, the Triton kernel of the cut-cross-entropy package (CUDA, where the "
                             "package is installed), which takes bf16 session vectors, so its loss and gradients are "
                             "cross-entropy's rounded to bf16; never graphed", choices=list(CCE_KERNELS),
                             check=one_of("cce kernel", "--cce-kernel", CCE_KERNELS), misuse="--cce-kernel {value} chooses how cce runs, not --loss {loss}: use --loss cce or "
                             "leave --cce-kernel chunked")


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
    label = "exact CE in chunks"
    colour = 5
    options = CCEOptions
    dense_gradient = True
    recent = True
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
        if torch.device(device).type != "cuda":
            raise ValueError(f"--cce-kernel cut runs a Triton kernel on CUDA only, and this run is on {device}: "
                             "use --cce-kernel chunked (exact, any device)")
        self._cut, version = _cut_linear_cross_entropy()
        self.kernel = f"cut-cross-entropy {version} (bf16 sessions)"

    @classmethod
    def build(cls, settings, n_items, counts, device):
        return cls(score_scale=settings.score_scale, kernel=settings.cce_kernel, device=device)

    @classmethod
    def check_device(cls, settings, device: torch.device | str) -> None:
        """Raise a ``ValueError`` when the kernel cannot run on ``device``
        (training calls it before it writes anything)."""
        if settings.cce_kernel == "cut" and torch.device(device).type != "cuda":
            raise ValueError(f"--cce-kernel cut runs a Triton kernel on CUDA only, and this run is on {device}: "
                             "use --cce-kernel chunked (exact, any device)")

    @classmethod
    def graph_reason(cls, settings):
        if settings.cce_kernel != "chunked":
            return ("the cut-cross-entropy kernel finds the batch's valid rows with nonzero(), which the host must "
                    "read; a graph cannot capture it (use --cce-kernel chunked to graph cce)")
        return None

    @classmethod
    def cost_key(cls, settings):
        return (bool(settings.l2), str(settings.cce_kernel))

    @classmethod
    def describe(cls, settings):
        return [f"{settings.cce_kernel} kernel"] if settings.cce_kernel != "chunked" else []

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
