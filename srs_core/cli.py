"""The ``srs`` command line: preprocess raw data, synthesise data, train.

Examples::

    srs synth --preset diginetica --scale 0.05 --seed 0 --output data/digi
    srs preprocess --dataset diginetica --input train-item-views.csv --output data/digi
    srs import-split --input datasets/diginetica --output data/diginetica-srgnn
    srs train --data data/digi --model stamp --loss ns --optimizer sparse --l2 --output runs/stamp-ns
    srs baseline --data data/digi --name transition
    srs convert-session-rec --input yoochoose-clicks-100k_train_full.txt --output yoochoose-clicks.dat
    srs recommend --run runs/stamp-ns --data data/digi --session "214 87 3301"
    srs export --run runs/stamp-ns --data data/digi --output exports/stamp-ns
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path


def _fraction(text: str) -> str:
    if text not in ("1/4", "1/64"):
        raise argparse.ArgumentTypeError(f"--fraction must be 1/4 or 1/64, got {text!r}")
    return text


def _baseline_params(name: str, pairs: list[str], defaults: dict) -> dict:
    """``["k=200", ...]`` as typed keyword arguments of baseline ``name`` (typed like the defaults)."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in defaults or key == "batch_size":
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE with NAME one of "
                             f"{', '.join(k for k in defaults if k != 'batch_size')} for baseline {name!r}")
        kind = type(defaults[key])
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"--param {pair!r}: {key} takes true or false")
            out[key] = text.lower() in ("true", "1")
        else:
            try:
                out[key] = kind(text)
            except ValueError:
                raise ValueError(f"--param {pair!r}: {key} takes a {kind.__name__}") from None
    return out


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so both stop `srs train` alike."""


def _interrupt(signum, frame) -> None:
    """SIGTERM handler for `srs train`: stop as Ctrl-C does, keeping the checkpoint."""
    raise _Terminated


def build_parser() -> argparse.ArgumentParser:
    from srs_core.data.readers import READERS
    from srs_core.data.synthetic import PRESETS

    p = argparse.ArgumentParser(
        prog="srs",
        description="Session-based recommendation with scalable losses "
        "(a reproduction of da Veiga 2023). Each subcommand has its own --help.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pp = sub.add_parser("preprocess", help="turn a raw dataset file into a processed dataset directory",
                        description="Apply the preprocessing of dissertation Section 4.5.4 (steps 1-8) to a raw file "
                        "and write a processed dataset directory with stats.json (Table 3's statistics).")
    pp.add_argument("--dataset", required=True, choices=sorted(READERS), help="format of the raw file")
    pp.add_argument("--input", required=True, type=Path, help="raw file (yoochoose-clicks.dat, train-item-views.csv, "
                    "train_dataset.jl[.gz], or a SessionId/ItemId/Time TSV)")
    pp.add_argument("--output", required=True, type=Path, help="directory to create (written atomically)")
    pp.add_argument("--test-days", type=float, default=None, help="days at the end that form the test split "
                    "(default: 1 for yoochoose, 7 for diginetica and meli2020; required for tsv)")
    pp.add_argument("--fraction", type=_fraction, default=None, help="yoochoose only: keep the most recent 1/4 or 1/64 of "
                    "the train sessions")
    pp.add_argument("--valid-days", type=float, default=None, help="days before the test split that form the "
                    "validation split, on which `srs train` chooses its epoch (default: as many as --test-days; "
                    "0: none, the dissertation's split)")
    pp.add_argument("--max-len", type=int, default=25, help="keep the last N events of every session (default 25)")
    pp.add_argument("--min-item-support", type=int, default=5, help="drop items seen fewer times (default 5)")
    pp.add_argument("--quiet", action="store_true", help="no progress bars")

    pi = sub.add_parser("import-split", help="import a published train/test split (SR-GNN's pickles) as a processed "
                        "dataset", description="Turn a directory holding a published, already preprocessed split "
                        "(all_train_seq.txt or SR-GNN's train.txt, and test.txt: the pickles of the SR-GNN authors' "
                        "script, on which Table 1's numbers were measured) into a processed dataset that keeps the "
                        "split exactly: every prefix of every training session, the published test rows, the "
                        "published item ids. The pickles are read without running any code they name.")
    pi.add_argument("--input", required=True, type=Path, help="directory with test.txt and all_train_seq.txt (or train.txt)")
    pi.add_argument("--output", required=True, type=Path, help="directory to create (written atomically)")
    pi.add_argument("--valid-fraction", type=float, default=0.1, metavar="F",
                    help="the last F of the training sessions (file order, which is chronological) form the "
                    "validation split, on which `srs train` chooses its epoch (default 0.1; 0: none, the "
                    "published split)")
    pi.add_argument("--fraction", type=float, default=None, metavar="F",
                    help="keep only the most recent F of the training and of the test sessions, for a quick check "
                    "(default: all)")
    pi.add_argument("--quiet", action="store_true", help="no progress bars")

    pc = sub.add_parser("convert-session-rec", help="write a session-rec SessionId/ItemId/Time TSV as raw yoochoose-clicks.dat",
                        description="Convert a session-rec prepared file (e.g. data/rsc15/prepared/"
                        "yoochoose-clicks-100k_train_full.txt: tab-separated SessionId, ItemId, Time in Unix seconds) "
                        "into the raw RecSys Challenge 2015 format (session, ISO-8601 UTC time with milliseconds, "
                        "item, category 0), which `srs preprocess --dataset yoochoose` reads.")
    pc.add_argument("--input", required=True, type=Path, help="session-rec TSV file")
    pc.add_argument("--output", required=True, type=Path, help="yoochoose-clicks.dat to write (atomically)")
    pc.add_argument("--quiet", action="store_true", help="no progress bars")

    ps = sub.add_parser("synth", help="generate a synthetic dataset that mimics a real one",
                        description="Generate synthetic sessions mimicking one dataset of the dissertation's Table 3 "
                        "(scaled), and preprocess them like real data.")
    ps.add_argument("--preset", required=True, choices=sorted(PRESETS), help="which dataset to mimic")
    ps.add_argument("--scale", type=float, default=0.05, help="multiplies the number of items and sessions (1.0 = full size)")
    ps.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    ps.add_argument("--output", required=True, type=Path, help="processed dataset directory to create")
    ps.add_argument("--valid-days", type=float, default=None, help="days before the test split that form the "
                    "validation split (default: the preset's own, 7 for the Diginetica-like preset, else its "
                    "test days; 0: none)")
    ps.add_argument("--quiet", action="store_true", help="no progress bars")

    pt = sub.add_parser("train", help="train and evaluate one model x loss x optimizer",
                        description="Train one model on a processed dataset, evaluate P@20 and MRR@20 with full "
                        "ranking after every epoch, and write RUN_DIR/result.json. Re-running the same command "
                        "resumes an interrupted run, and does nothing if the run is complete (unless --force).")
    from srs_core.training import TrainConfig

    TrainConfig.add_arguments(pt)  # one flag per field, with its default and help
    pt.add_argument("--output", required=True, type=Path, metavar="RUN_DIR", help="run directory (result.json and checkpoint.pt)")
    pt.add_argument("--force", action="store_true", help="train again even if the run is complete")
    pt.add_argument("--quiet", action="store_true", help="no progress bars")

    from srs_core.baselines import BASELINES

    pb = sub.add_parser("baseline", help="evaluate a non-neural baseline (popularity, transition, sr, ar, sknn, vsknn)",
                        description="Fit a baseline on the train split and evaluate it on the test split with the same "
                        "full-ranking P@20 and MRR@20 and tie rule as the neural models. sr, ar, sknn and vsknn are "
                        "session-rec's sequential rules, association rules, session-kNN and V-SKNN, with its defaults.")
    pb.add_argument("--data", required=True, type=Path, help="processed dataset directory")
    pb.add_argument("--name", required=True, choices=list(BASELINES))
    pb.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="set a hyperparameter (repeatable), e.g. --param k=200 --param sample_size=1000; "
                    "see srs_core.baselines for each baseline's parameters and defaults")
    pb.add_argument("--quiet", action="store_true", help="no progress bars")
    pr = sub.add_parser("recommend", help="the top-k items for sessions, from a trained run",
                        description="Rank every item for each session with a complete `srs train` run (its weights at "
                        "the chosen epoch) and print or write the top-k, in the dataset's raw item ids. Items the model "
                        "does not know are dropped from a session; a session with none gets the most popular items.")
    pr.add_argument("--run", required=True, type=Path, help="the run directory (srs train --output)")
    pr.add_argument("--data", required=True, type=Path, help="the processed dataset the run was trained on")
    one = pr.add_mutually_exclusive_group(required=True)
    one.add_argument("--session", help='one session: raw item ids separated by spaces, e.g. "214 87 3301"')
    one.add_argument("--input", type=Path, help="sessions: one a line (item ids separated by spaces), or a CSV with "
                     "a header naming a session column, an item column and optionally a time column")
    pr.add_argument("--output", type=Path, help="with --input: the CSV to write (session,rank,item,score,dropped,"
                    "fallback), atomically")
    pr.add_argument("--k", type=int, default=20, help="items per session (default 20)")
    pr.add_argument("--exclude-seen", action="store_true", help="leave out the items the session already holds")
    pr.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    pr.add_argument("--index", default="exact", choices=["exact", "ivf", "hnsw"],
                    help="exact (default): every item is scored; ivf or hnsw: an approximate inner-product index "
                    "(needs faiss: pip install faiss-cpu)")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")

    pe = sub.add_parser("export", help="write a trained run as a self-contained artifact",
                        description="Write the run's encoder (TorchScript), its item matrix, the raw-id table, the "
                        "most popular items and a reader script that needs only torch and numpy (DIR/recommend.py).")
    pe.add_argument("--run", required=True, type=Path, help="the run directory (srs train --output)")
    pe.add_argument("--data", required=True, type=Path, help="the processed dataset the run was trained on")
    pe.add_argument("--output", required=True, type=Path, help="the folder to write (atomically)")
    return p


def _recommend(args) -> None:
    """``srs recommend``: a table for one session, or a CSV for a file of them."""
    from srs_core.progress import tqdm

    from srs_core.recommend import RecommendError, Recommender, read_sessions, summary, write_recommendations

    if args.input is not None and args.output is None:
        raise RecommendError("--input needs --output, the CSV to write")
    if args.session is not None:
        names, sessions = ["1"], [args.session.replace(",", " ").split()]
        if not sessions[0]:
            raise RecommendError("--session is empty: give raw item ids separated by spaces")
    else:
        names, sessions = read_sessions(args.input)
    rec = Recommender.from_run(args.run, args.data, device=args.device, index=args.index)
    block = 4096
    recs = []
    for lo in tqdm(range(0, len(sessions), block), desc="sessions", disable=args.quiet or args.session is not None,
                   unit_scale=block):
        recs += rec.recommend(sessions[lo:lo + block], k=args.k, exclude_seen=args.exclude_seen)
    if args.session is not None:
        r = recs[0]
        note = ("no item of the session is known to the model: the most popular items" if r.fallback else
                f"{len(r.known)} known item(s)" + (f", {r.dropped} unknown item(s) left out" if r.dropped else ""))
        print(f"top {len(r.items)} for the session ({note}):")
        print(f"{'rank':>4}  {'item':>12}  score")
        for rank, (item, score) in enumerate(zip(r.items, r.scores), 1):
            print(f"{rank:>4}  {item:>12}  {'' if score != score else f'{score:.4f}'}")
        return
    write_recommendations(args.output, names, recs)
    n = summary(recs)
    print(f"wrote the top {args.k} of {n['sessions']:,} sessions to {args.output} ({n['fallback']:,} answered with the "
          f"most popular items; {n['dropped_items']:,} unknown items left out)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "preprocess":
            from srs_core.data.preprocess import preprocess_file

            out = preprocess_file(args.dataset, args.input, args.output, test_days=args.test_days, fraction=args.fraction,
                                  max_len=args.max_len, min_item_support=args.min_item_support,
                                  valid_days=args.valid_days, quiet=args.quiet)
            print(json.dumps(json.loads((Path(out) / "stats.json").read_text()), indent=2))
        elif args.command == "import-split":
            from srs_core.data.published import import_split

            out = import_split(args.input, args.output, valid_fraction=args.valid_fraction, fraction=args.fraction,
                               quiet=args.quiet)
            print(json.dumps(json.loads((Path(out) / "stats.json").read_text()), indent=2))
        elif args.command == "convert-session-rec":
            from srs_core.data.readers import read_tsv
            from srs_core.data.synthetic import write_raw

            events = read_tsv(args.input, quiet=args.quiet)
            write_raw(events, args.output, fmt="yoochoose")
            print(f"wrote {len(events):,} clicks of {events['session'].nunique():,} sessions to {args.output}")
        elif args.command == "synth":
            from srs_core.data.synthetic import synthesize

            out = synthesize(args.preset, args.scale, args.seed, args.output, quiet=args.quiet,
                             valid_days=args.valid_days)
            print(json.dumps(json.loads((Path(out) / "stats.json").read_text()), indent=2))
        elif args.command == "train":
            from os import environ

            from srs_core.training import TrainConfig, fit

            cfg = TrainConfig.from_args(args)
            before = signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's stop ends like Ctrl-C
            try:
                rec = fit(cfg, args.output, force=args.force, quiet=args.quiet)
            except KeyboardInterrupt as stop:
                by = "SIGTERM" if isinstance(stop, _Terminated) else "Ctrl-C"
                print(f"srs train: interrupted ({by}). {args.output} keeps the checkpoint of the last "
                      "finished epoch; run the same command again to resume from it.", file=sys.stderr)
                return 130
            finally:
                signal.signal(signal.SIGTERM, before)
            if environ.get("RANK", "0") != "0":
                return 0  # under torchrun, rank 0 reports
            for e in rec["epochs"]:
                print(f"epoch {e['epoch']}: P@20 {e['p_at_20']:.4f}  MRR@20 {e['mrr_at_20']:.4f}  "
                      f"train {e['train_seconds']:.1f}s")
            print(f"best epoch {rec['best']['epoch']}: MRR@20 {rec['best']['mrr_at_20']:.4f}; record in {args.output / 'result.json'}")
        elif args.command == "recommend":
            _recommend(args)
        elif args.command == "export":
            from srs_core.export import export_run

            out = export_run(args.run, args.data, args.output)
            print(f"wrote {out}: run `python {out / 'recommend.py'} --session \"...\"` (needs only torch and numpy)")
        elif args.command == "baseline":
            from srs_core.baselines import baseline_params, evaluate_baseline
            from srs_core.data.dataset import ProcessedDataset

            params = _baseline_params(args.name, args.param, baseline_params(args.name))
            res = evaluate_baseline(args.name, ProcessedDataset.load(args.data), quiet=args.quiet, params=params)
            print(json.dumps(res, indent=2))
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"srs {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
