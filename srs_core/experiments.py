"""The glue the notebooks call: datasets by name, run grids, tidy tables.

Keeping this here keeps the notebooks thin: they choose parameters, call
these functions, and show what comes back.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from srs_core.progress import tqdm

from srs_core.data.dataset import ProcessedDataset
from srs_core.data.integrity import DatasetError
from srs_core.diagnosis import REFERENCE, is_extension, is_recent, variant
from srs_core.losses import option_fields
from srs_core.results import RANKS, ResultsStore, atomic_write_ranks, config_hash, is_complete
from srs_core.training import TrainConfig, best_epoch, dataset_fingerprint, run_in_store, run_key

#: Every loss option and its default, one column each in the rows of :func:`summarise`.
OPTION_DEFAULTS = {name: f.default for name, f in option_fields().items()}
#: The dissertation's Table 3 (da Veiga 2023, Section 4.5.5), as published.
TABLE3_PUBLISHED = {
    "yoochoose-1/4": {"n_items": 33_280, "n_train_sessions": 1_925_647, "n_train_samples": 5_922_115, "avg_train_session_length": 4.70},
    "yoochoose-1/64": {"n_items": 17_511, "n_train_sessions": 117_178, "n_train_samples": 370_130, "avg_train_session_length": 5.07},
    "diginetica": {"n_items": 104_419, "n_train_sessions": 186_670, "n_train_samples": 819_081, "avg_train_session_length": 4.66},
    "meli2020": {"n_items": 1_279_791, "n_train_sessions": 247_834, "n_train_samples": 4_675_443, "avg_train_session_length": 21.74},
}
#: The format name of a published train/test split directory (srs import-split).
PUBLISHED_SPLIT = "published-split"
#: Which raw-file reader and preprocessing options belong to each dataset name.
REAL_FORMATS = {
    "yoochoose-1/4": ("yoochoose", {"fraction": "1/4", "test_days": 1}),
    "yoochoose-1/64": ("yoochoose", {"fraction": "1/64", "test_days": 1}),
    "diginetica": ("diginetica", {"test_days": 7}),
    "meli2020": ("meli2020", {"test_days": 7}),
    # session-rec's public 100k-click Yoochoose sample (README: how to make the
    # file); its last day is the validation day. No synthetic twin exists.
    "yoochoose-100k": ("yoochoose", {"test_days": 1}),
    # the standard Diginetica split of the SR-GNN authors' script, on which
    # Table 1's numbers were published: a directory of pickles, imported as
    # published (srs import-split), the last tenth of its training sessions
    # kept for validation
    "diginetica-srgnn": (PUBLISHED_SPLIT, {"valid_fraction": 0.1}),
}
#: Datasets that exist only as real files, skipped with a note where the file is absent.
REAL_ONLY = ("yoochoose-100k", "diginetica-srgnn")
#: Where a user gets each real-only dataset (the book's appendix says more).
REAL_SOURCES = {
    "yoochoose-100k": "README, 'Real data: yoochoose-100k', says how to make the file",
    "diginetica-srgnn": "README, 'The standard Diginetica split', says where to get the two files",
}



def dataset_dir(work_dir: str | Path, name: str) -> Path:
    """Where the processed dataset ``name`` lives inside ``work_dir``."""
    return Path(work_dir) / "data" / name.replace("/", "-")


def results_store(work_dir: str | Path) -> ResultsStore:
    return ResultsStore(Path(work_dir) / "results")


def check_names(kind: str, given: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """Fail early, naming the bad parameter value and the valid choices."""
    given, allowed = list(given), list(allowed)
    bad = [g for g in given if g not in allowed]
    if bad:
        raise ValueError(f"unknown {kind} {bad}: choose from {allowed}")
    if not given:
        raise ValueError(f"the list of {kind}s is empty: give at least one of {allowed}")
    return given


def prepare_dataset(work_dir: str | Path, name: str, *, scale: float, seed: int = 0, raw_path: str | None = None,
                    quiet: bool = True) -> ProcessedDataset:
    """Make (synthetic) or preprocess (real ``raw_path``) dataset ``name``,
    unless ``work_dir`` already holds it with the same recipe. For a
    published split (a directory, :data:`PUBLISHED_SPLIT`) a ``scale`` below 1
    keeps that most recent share of its sessions (a quick check); real raw
    files ignore ``scale``."""
    from srs_core.data.preprocess import preprocess_file
    from srs_core.data.published import import_split
    from srs_core.data.synthetic import PRESETS, synthesize

    check_names("dataset", [name], [*PRESETS, *REAL_ONLY])
    if name in REAL_ONLY and not raw_path:
        raise ValueError(f"dataset {name!r} has no synthetic preset: give its raw file in raw_paths")
    split = raw_path is not None and REAL_FORMATS[name][0] == PUBLISHED_SPLIT
    out = dataset_dir(work_dir, name)
    recipe = {"name": name, "raw_path": str(raw_path) if raw_path else None,
              "scale": (scale if split and scale < 1 else None) if raw_path else scale,
              "seed": None if raw_path else seed}
    recipe_file = out / "recipe.json"
    if recipe_file.is_file() and json.loads(recipe_file.read_text()) == recipe:
        try:
            return ProcessedDataset.load(out)
        except DatasetError as exc:
            print(f"{name}: rebuilding the damaged dataset ({exc})")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    if raw_path:
        if not Path(raw_path).exists():
            raise FileNotFoundError(f"raw file for {name!r} not found: {raw_path}. Download it (see the appendix "
                                    "'Running on the real datasets') or leave raw_paths empty for synthetic data.")
        fmt, opts = REAL_FORMATS[name]
        if split:
            import_split(raw_path, out, fraction=recipe["scale"], quiet=quiet, **opts)
        else:
            preprocess_file(fmt, raw_path, out, quiet=quiet, **opts)
    else:
        synthesize(name, scale, seed, out, quiet=quiet)
    (out / "recipe.json").write_text(json.dumps(recipe))
    return ProcessedDataset.load(out)


def locate_raw(raw_paths: dict) -> dict[str, str]:
    """Raw paths with relative ones taken from the project root (where the
    profiles point at ``../shared/data/...``)."""
    return {name: str(p if Path(p).is_absolute() else project_root() / p) for name, p in raw_paths.items()}


def plan_datasets(datasets: list[str], raw_paths: dict) -> tuple[list[str], dict[str, str], list[str]]:
    """Which datasets of a profile can be made here.

    Returns the names to make, their raw files (absolute), and one line per
    real-only dataset left out because its file is absent. A missing file of
    a dataset that also has a synthetic preset stays an error (the user asked
    for the real one)."""
    raw = locate_raw(raw_paths)
    keep, notes = [], []
    for name in datasets:
        if name in REAL_ONLY and not (name in raw and Path(raw[name]).exists()):
            given = raw_paths.get(name)
            # a relative path is the reader's own setting; an absolute one would print this machine's folders
            where = ("no path in raw_paths" if not given else f"not at {given}" if not Path(given).is_absolute()
                     else f"not at the path raw_paths gives, .../{Path(given).name}")
            notes.append(f"{name}: real data not found ({where}); its real-data sections are skipped "
                         f"({REAL_SOURCES[name]}).")
            continue
        keep.append(name)
    return keep, {n: raw[n] for n in keep if n in raw}, notes


def prepared(work_dir: str | Path, names: list[str], quiet: bool = False) -> list[str]:
    """``names`` without the real-only datasets that 00-data could not make
    here (printing one line for each, unless ``quiet``: a page that says so
    in its own words); other missing datasets raise."""
    keep = []
    for name in names:
        if name in REAL_ONLY and not (dataset_dir(work_dir, name) / "stats.json").is_file():
            if not quiet:
                print(f"{name}: not prepared (its real file is absent here), so it is skipped.")
            continue
        keep.append(name)
    return keep


def is_real(work_dir: str | Path, name: str) -> bool:
    """Whether dataset ``name`` in ``work_dir`` was made from a real raw file."""
    recipe = dataset_dir(work_dir, name) / "recipe.json"
    return recipe.is_file() and json.loads(recipe.read_text()).get("raw_path") is not None


def stats_table(work_dir: str | Path, names: list[str]) -> pd.DataFrame:
    """Our Table 3 beside the published one."""
    rows = []
    for name in names:
        ours = ProcessedDataset.load(dataset_dir(work_dir, name)).stats
        pub = TABLE3_PUBLISHED.get(name, {})
        for key in ("n_items", "n_train_sessions", "n_train_samples", "avg_train_session_length", "n_test_sessions", "n_test_samples"):
            rows.append({"dataset": name, "statistic": key, "ours": ours[key], "dissertation": pub.get(key)})
    return pd.DataFrame(rows)


def run_grid(work_dir: str | Path, configs: list[TrainConfig], *, quiet: bool = True, workers: int = 1) -> pd.DataFrame:
    """Run every config (skipping complete ones) and return their summary rows.

    ``workers > 1`` trains that many runs at once in fresh processes, each
    with ``cores // workers`` torch threads (small models on a CPU use several
    cores poorly, so two one-thread runs finish sooner than two two-thread
    runs in a row). Every run is still resumable and lands in the same store.
    """
    store = results_store(work_dir)
    if workers <= 1:
        return summarise([run_in_store(store, cfg, quiet=quiet) for cfg in tqdm(configs, desc="runs")])
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_set_threads,
                             initargs=(threads,)) as pool:
        futures = [pool.submit(run_in_store, str(store.root), cfg, quiet=True) for cfg in configs]
        records = [f.result() for f in tqdm(futures, desc="runs")]
    return summarise(records)


def complete_configs(work_dir: str | Path, configs: list[TrainConfig]) -> list[TrainConfig]:
    """The configs whose run is already complete in the store of ``work_dir``."""
    store = results_store(work_dir)
    keep = []
    for cfg in configs:
        _, key = run_key(cfg)
        if is_complete(store.get(key), key):
            keep.append(cfg)
    return keep


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def run_baselines(work_dir: str | Path, names: list[str]) -> pd.DataFrame:
    """Every baseline on every dataset, kept in the store: each tuned on the
    validation split over its stated grid (``baselines.VALID_GRIDS``) where
    there is one, then ranked once on the test split; its test ranks are kept
    beside the record, like a neural run's."""
    from srs_core.baselines import BASELINES, VALID_GRIDS, baseline_params, tune_baseline

    store = results_store(work_dir)
    records = []
    for name in names:
        ds = ProcessedDataset.load(dataset_dir(work_dir, name))
        for base in BASELINES:
            # the defaults and the grid are part of the result: a changed one is a new record
            identity = {"baseline": base, "params": {k: v for k, v in baseline_params(base).items() if k != "batch_size"},
                        "dataset": dataset_fingerprint(ds)}
            if ds.valid is not None and base in VALID_GRIDS:
                identity["grid"] = VALID_GRIDS[base]
            key = config_hash(identity)
            rec = store.get(key)
            if not is_complete(rec, key):
                tuned = tune_baseline(base, ds)
                valid = {f"valid_{m}": v for m, v in (tuned["valid"] or {}).items()}
                atomic_write_ranks(store.run_dir(key) / RANKS, tuned["ranks"])
                rec = {"kind": "baseline", "config_hash": key, "identity": identity, "status": "complete",
                       "config": {"data": str(ds.path), "model": base}, "n_items": ds.n_items,
                       "selected_on": tuned["selected_on"], "params": tuned["params"], "grid": tuned["grid"],
                       "best": {"epoch": 0, **tuned["test"], **valid}, "epochs": [], "ranks": RANKS}
                store.put(rec)
            records.append(rec)
    return summarise(records)


def ranks_of(work_dir: str | Path, config_hash: str) -> np.ndarray | None:
    """The test ranks kept beside run ``config_hash`` (``None`` if it has none)."""
    path = results_store(work_dir).run_dir(config_hash) / RANKS
    return np.load(path) if path.is_file() else None


def item_alignment(work_dir: str | Path, config_hash: str) -> float:
    """How much the item vectors of run ``config_hash`` point one way, at its
    last checkpointed epoch: the length of the mean of the unit item vectors
    (0 when they spread evenly, 1 when all point the same way; ``NaN`` without a
    checkpoint). Used to diagnose a loss that turns every item away from every
    session (gBCE without its offset, notebook 07-beyond)."""
    import torch

    from srs_core.training.checkpoint import CHECKPOINT

    path = results_store(work_dir).run_dir(config_hash) / CHECKPOINT
    if not path.is_file():
        return float("nan")
    weight = torch.load(path, map_location="cpu", weights_only=False)["model"]["item_embedding.weight"][1:]
    unit = torch.nn.functional.normalize(weight.float(), dim=1)
    return float(unit.mean(0).norm())


def paired_intervals(work_dir: str | Path, runs: pd.DataFrame, reference: str = REFERENCE,
                     group: tuple[str, ...] = ("dataset", "model"), reference_runs: pd.DataFrame | None = None,
                     metrics: tuple[str, ...] = ("mrr", "p")) -> pd.DataFrame:
    """For every ``group`` x variant of ``runs``: the ratio of its metric to the
    ``reference`` variant's in the same group, with the paired bootstrap
    interval over test sessions (seeds matched, :func:`srs_core.stats.paired_ratio`)
    and its verdict. ``reference_runs`` (default: ``runs``) holds the
    reference rows; a reference with one run (a baseline) is paired with every
    seed. Columns: the group, ``variant``, ``seeds``, then per metric
    ``{m}_ratio``, ``{m}_lo``, ``{m}_hi``, ``{m}_verdict``."""
    from srs_core.stats import NOT_MEASURED, paired_ratio

    group = list(group)
    refs = runs if reference_runs is None else reference_runs
    ranks, offsets_of = {}, {}  # each run's ranks and each dataset's offsets, read once per call

    def ranks_by_seed(frame: pd.DataFrame) -> list:
        for h in frame.config_hash:
            if h not in ranks:
                ranks[h] = ranks_of(work_dir, h)
        return [ranks[h] for h in frame.sort_values("seed").config_hash]

    rows = []
    for keys, g in runs.groupby(group + ["variant"], sort=False):
        keys = dict(zip(group + ["variant"], keys))
        if keys["variant"] == reference and reference_runs is None:
            continue
        ref = refs.loc[(refs[group] == pd.Series({k: keys[k] for k in group})).all(axis=1) & (refs.variant == reference)]
        if len(ref) > 1:  # seeds matched: keep the seeds both sides have
            common = sorted(set(g.seed) & set(ref.seed))
            g, ref = g[g.seed.isin(common)], ref[ref.seed.isin(common)]
        a, b = ranks_by_seed(g), ranks_by_seed(ref)
        ok = len(a) and len(b) and all(r is not None for r in a + b)
        if ok and keys["dataset"] not in offsets_of:
            test = ProcessedDataset.load(dataset_dir(work_dir, keys["dataset"])).test
            offsets_of[keys["dataset"]] = (test.offsets, test.first)
        offsets, first = offsets_of.get(keys["dataset"], (None, None)) if ok else (None, None)
        row = {**keys, "seeds": len(a)}
        for m in metrics:
            iv = paired_ratio(a, b, offsets, metric=m, first=first) if ok else NOT_MEASURED
            row.update({f"{m}_ratio": iv.ratio, f"{m}_lo": iv.lo, f"{m}_hi": iv.hi, f"{m}_verdict": iv.verdict})
        rows.append(row)
    columns = group + ["variant", "seeds"] + [f"{m}_{part}" for m in metrics for part in ("ratio", "lo", "hi", "verdict")]
    return pd.DataFrame(rows, columns=columns)


#: The columns of :func:`summarise` that describe a variant's setting, carried
#: into :func:`compare_runs`'s table (notebook 07 times each chosen setting).
SETTING_COLUMNS = ("optimizer", "l2", *OPTION_DEFAULTS, "recent", "batching")


def compare_runs(work_dir: str | Path, runs: pd.DataFrame, reference: str = REFERENCE,
                 group: tuple[str, ...] = ("dataset", "model")) -> pd.DataFrame:
    """:func:`srs_core.diagnosis.compare` (means, spreads and ratios over
    seeds) with the paired intervals and verdicts of :func:`paired_intervals`
    beside them, and each variant's ``loss``, ``extension`` flag, mean
    epochs run and setting (:data:`SETTING_COLUMNS`)."""
    from srs_core.diagnosis import compare

    means = compare(runs, reference=reference, group=group)
    intervals = paired_intervals(work_dir, runs, reference=reference, group=group).drop(columns="seeds")
    setting = {c: (c, "first") for c in SETTING_COLUMNS if c in runs}  # what a variant's cost depends on
    info = runs.groupby(list(group) + ["variant"], as_index=False, sort=False).agg(
        loss=("loss", "first"), extension=("extension", "first"), epochs_run=("epochs_run", "mean"), **setting)
    return means.merge(intervals, how="left", on=list(group) + ["variant"]).merge(info, how="left",
                                                                                  on=list(group) + ["variant"])


def interval_text(ratio: float, lo: float, hi: float) -> str:
    """``"0.97 (0.93-1.01)"``: a ratio and its 95% interval for a table, "–" when not measured."""
    from srs_core.stats import Interval

    return Interval(ratio, lo, hi, 0, 0).text()


def summarise(records: list[dict]) -> pd.DataFrame:
    """One tidy row per run: what was trained, its best epoch, its speed."""

    rows = []
    for r in records:
        c = r["config"]
        epochs = r.get("epochs") or []
        test_best = best_epoch(epochs, "test") or {}  # the published protocol: the best test epoch
        rows.append({
            "dataset": Path(c["data"]).name,
            "model": c["model"],
            "loss": c.get("loss", "-"),
            "optimizer": c.get("optimizer", "-"),
            "l2": c.get("l2", False),
            "seed": c.get("seed", 0),
            "kind": r.get("kind", "neural"),
            "variant": variant(c) if r.get("kind", "neural") == "neural" else c["model"],
            "extension": is_extension(c),
            "recent": is_recent(c),
            **{name: c.get(name, default) for name, default in OPTION_DEFAULTS.items()},
            "batching": c.get("batching", "samples"),
            "epochs_run": len(epochs),
            "n_items": r.get("n_items"),
            "n_train_samples": (r.get("dataset_stats") or {}).get("n_train_samples"),
            "best_epoch": r["best"]["epoch"],
            "selected_on": r.get("selected_on", "test"),
            "valid_mrr_at_20": r["best"].get("valid_mrr_at_20", float("nan")),
            "p_at_20": r["best"]["p_at_20"],
            "mrr_at_20": r["best"]["mrr_at_20"],
            "test_best_p_at_20": test_best.get("p_at_20", float("nan")),
            "test_best_mrr_at_20": test_best.get("mrr_at_20", float("nan")),
            "epoch_seconds": sum(e["train_seconds"] for e in epochs) / len(epochs) if epochs else float("nan"),
            "config_hash": r["config_hash"],
        })
    return pd.DataFrame(rows)


def all_results(work_dir: str | Path) -> pd.DataFrame:
    """Every complete record of the store as a tidy table."""
    return summarise(results_store(work_dir).records())


def configs(work_dir: str | Path, datasets: list[str], models: list[str], seeds: list[int], *,
            real: dict | None = None, synthetic: dict | None = None, **fields) -> list[TrainConfig]:
    """The cross product datasets x models x seeds with shared ``fields``;
    ``real`` overrides fields on datasets made from real files (the profiles
    train those with early stopping: ``{"epochs": 20, "patience": 2}``) and
    ``synthetic`` on the synthetic presets (their learning rate, chosen on a
    preset's validation split: ``{"lr": 0.003}``)."""
    from srs_core.models import MODELS

    check_names("model", models, list(MODELS))
    out = []
    for name in datasets:
        data = dataset_dir(work_dir, name)
        if not (data / "stats.json").is_file():
            raise FileNotFoundError(f"dataset {name!r} is not prepared in {data}: run notebooks/00-data.ipynb first "
                                    "with the same work_dir and datasets")
        own = {**fields, **((real or {}) if is_real(work_dir, name) else (synthetic or {}))}
        for model in models:
            for seed in seeds:
                out.append(TrainConfig(data=str(data), model=model, seed=seed, **own))
    return out


def with_fields(cfgs: list[TrainConfig], **fields) -> list[TrainConfig]:
    return [replace(c, **fields) for c in cfgs]


def shown(value, spec: str = ".2f") -> str:
    """``value`` formatted for a sentence of the book, or "–" when it was not
    measured (``NaN`` or ``None``), so that no page prints a missing value."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def project_root() -> Path:
    """The repository root (the folder holding ``_toc.yml``), found upwards from
    the working directory, else next to the installed package."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "srs_core").is_dir():
            return folder
    return Path(__file__).resolve().parents[1]


def resolve_work_dir(work_dir: str | Path) -> Path:
    """Relative work dirs are relative to the project root, wherever the
    notebook runs from (papermill, nbval and Jupyter use different cwds)."""
    p = Path(work_dir)
    return p if p.is_absolute() else project_root() / p


def runs_with_epochs(work_dir: str | Path, epochs: int) -> set[str]:
    """Hashes of the complete runs trained for exactly ``epochs`` epochs."""
    return {r["config_hash"] for r in results_store(work_dir).records() if r.get("config", {}).get("epochs") == epochs}


def table3(work_dir: str | Path, names: list[str]) -> pd.DataFrame:
    """Table 3 for display: per dataset, our value beside the published one
    (counts with thousands separators, the mean length with two decimals)."""
    long = stats_table(work_dir, names)
    long = long[long.statistic.isin(["n_items", "n_train_sessions", "n_train_samples", "avg_train_session_length"])]

    def fmt(row, col):
        v = row[col]
        if v is None or pd.isna(v):
            return "-"
        return f"{v:.2f}" if row.statistic == "avg_train_session_length" else f"{int(v):,}"

    out = long.assign(ours=[fmt(r, "ours") for _, r in long.iterrows()],
                      dissertation=[fmt(r, "dissertation") for _, r in long.iterrows()])
    labels = {"n_items": "items", "n_train_sessions": "training sessions",
              "n_train_samples": "training samples (every prefix)", "avg_train_session_length": "mean session length"}
    out = out.assign(order=out.statistic.map(list(labels).index), statistic=out.statistic.map(labels))
    out = out.assign(dataset=pd.Categorical(out.dataset, categories=names, ordered=True)).sort_values(["dataset", "order"])
    return out.set_index(["dataset", "statistic"])[["ours", "dissertation"]]  # long: it fits a narrow page
