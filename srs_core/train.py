"""The names notebooks, tests and users import from ``srs_core.train``; the
code lives in :mod:`srs_core.training`."""
from srs_core.training import (Run, TrainConfig, best_epoch, dataset_fingerprint, evaluate, fit, run_in_store, run_key,
                               stopped_early)

__all__ = ["Run", "TrainConfig", "best_epoch", "dataset_fingerprint", "evaluate", "fit", "run_in_store", "run_key",
           "stopped_early"]
