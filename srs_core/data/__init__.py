"""Session data: raw readers, the Section 4.5.4 preprocessing, synthetic data, batches."""
from .dataset import Batch, ProcessedDataset, Split, iter_batches, make_batch, n_batches
from .preprocess import (
    DEFAULT_TEST_DAYS,
    STATS_KEYS,
    PreprocessError,
    PreprocessResult,
    parse_fraction,
    preprocess_events,
    preprocess_file,
    write_processed,
)
from .readers import EVENT_COLUMNS, READERS, DataFormatError, make_events, read_events
from .synthetic import PRESETS, generate_events, synthesize, write_raw

__all__ = [
    "Batch", "ProcessedDataset", "Split", "iter_batches", "make_batch", "n_batches",
    "DEFAULT_TEST_DAYS", "STATS_KEYS", "PreprocessError", "PreprocessResult", "parse_fraction",
    "preprocess_events", "preprocess_file", "write_processed",
    "EVENT_COLUMNS", "READERS", "DataFormatError", "make_events", "read_events",
    "PRESETS", "generate_events", "synthesize", "write_raw",
]
