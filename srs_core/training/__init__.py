"""Training one run, from the bottom up:

* :mod:`.runtime`: the device, clocks, progress bars, the machine record;
* :mod:`.config`: :class:`~srs_core.training.config.TrainConfig` (defaults, checks, its ``srs train``
  flags) and the run's key in the results store;
* :mod:`.distributed`: data-parallel training under torchrun;
* :mod:`.evaluate`: full-ranking P@20 and MRR@20;
* :mod:`.step` and :mod:`.graph`: the training step, eager or replayed from
  a CUDA graph;
* :mod:`.checkpoint`: model, optimizer and random streams after each epoch;
* :mod:`.loop`: :func:`~srs_core.training.loop.fit` (set-up, then the epoch loop) and
  :func:`~srs_core.training.loop.run_in_store`.
"""
from .config import TrainConfig, dataset_fingerprint, run_key
from .evaluate import evaluate
from .loop import Run, best_epoch, fit, run_in_store, stopped_early

__all__ = ["Run", "TrainConfig", "best_epoch", "dataset_fingerprint", "evaluate", "fit", "run_in_store", "run_key",
           "stopped_early"]
