"""Run the whole pipeline for one profile and build the book.

``python -m srs_core.publish.book --profile default`` (what ``make book`` calls):

1. executes every notebook in ``NOTEBOOKS`` with papermill, with the
   parameters of ``params/<profile>.yaml`` (each notebook gets the keys it
   declares), writing the executed copies under ``_build/<profile>/src``;
2. lays out the book sources next to them (``_config.yml``, ``_toc.yml``,
   ``book/``, a link to ``srs_core/``) and builds the HTML book with warnings
   as errors, without re-executing anything;
3. opens the pages in headless Chromium and checks that they show their
   figures (:mod:`srs_core.publish.pagecheck`), then prints the path of ``index.html``.

Runs finished by an earlier, interrupted call are kept in the results store
under ``_build/work/<profile>``, so calling it again resumes.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from srs_core.publish.assets import vendor_mathjax

ROOT = Path(__file__).resolve().parents[2]
# The notebooks in the order they run: each reads what the ones before it
# stored (the figures read the diagnosis's choices, so 06 runs before 05;
# 07 sets the losses published since the dissertation beside 06's runs; 08
# reuses the Table 1 runs of the standard Diginetica split).
NOTEBOOKS = [
    "basics-loss-cost",
    "00-data",
    "models-table1",
    "01-experiment-1",
    "02-experiment-2",
    "03-experiment-3",
    "06-diagnosis",
    "07-beyond",
    "08-real-diginetica",
    "04-scaling",
    "05-figures",
    "using-a-trained-model",
]
PROFILES = ("ci", "default", "full")


def load_profile(name: str) -> dict:
    path = ROOT / "params" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"unknown profile {name!r}: {path} does not exist; choose one of {', '.join(PROFILES)}")
    return yaml.safe_load(path.read_text()) or {}


def _execute(nb_in: Path, nb_out: Path, parameters: dict) -> None:
    """Run one notebook with papermill from the project root; the output
    appears only when the run succeeded (temporary file, then rename)."""
    import papermill as pm

    import os

    from srs_core.progress import ENV

    tmp = nb_out.with_name(f".{nb_out.stem}.partial.ipynb")
    # the kernel inherits it: its progress goes to this text log, not onto the page
    os.environ.setdefault(ENV, str(ROOT / "_build" / "progress.log"))
    pm.execute_notebook(str(nb_in), str(tmp), parameters=parameters, cwd=str(ROOT), kernel_name="python3",
                        progress_bar=False)
    fold_code(tmp)
    tmp.replace(nb_out)


def fold_code(path: Path) -> None:
    """Ready an executed notebook for its page: every code cell is tagged
    ``hide-input`` (papermill's injected-parameters cell included), so the
    book shows results first and folds the code; the regression check
    (``NBVAL_CHECK_OUTPUT``) is tagged ``remove-cell``, kept in the notebook
    for nbval and left off the page; and where papermill injected this
    build's parameters, the notebook's own defaults are left off too, so the
    page shows one parameter cell, the one that ran. Widget state and widget
    outputs are dropped: progress belongs in the build log."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)  # widget state (progress bars of older runs) would load scripts from the network
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        tags = cell.metadata.setdefault("tags", [])
        extra = ["hide-input"]
        if "NBVAL_CHECK_OUTPUT" in cell.source or (injected and "parameters" in tags):
            extra.append("remove-cell")
        tags.extend(t for t in extra if t not in tags)
        cell.outputs = [o for o in cell.get("outputs", [])
                        if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    nbformat.write(nb, path)


def parse_overrides(pairs: list[str] | None) -> dict:
    """``KEY=VALUE`` pairs (VALUE in YAML: ``epochs=1``, ``raw_paths={a: /x}``)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE, e.g. --set epochs=1")
        out[key] = yaml.safe_load(value)
    return out


def execute_notebooks(profile: str, src: Path, only: list[str] | None = None, overrides: dict | None = None) -> None:
    import papermill as pm

    import os

    from srs_core.progress import ENV

    params = {**load_profile(profile), **(overrides or {})}
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(src.parent / "progress.log")
    print(f"[book] the runs' progress: {os.environ[ENV]}", flush=True)
    for name in only or NOTEBOOKS:
        nb_in = ROOT / "notebooks" / f"{name}.ipynb"
        declared = pm.inspect_notebook(str(nb_in))
        mine = {k: v for k, v in params.items() if k in declared}
        print(f"[book] {name}: {mine}", flush=True)
        t0 = time.perf_counter()
        _execute(nb_in, src / "notebooks" / f"{name}.ipynb", mine)
        print(f"[book] {name} done in {time.perf_counter() - t0:.0f} s", flush=True)


def refresh_committed(only: list[str] | None = None) -> None:
    """Execute the committed notebooks in place with their default parameters,
    rewriting their regression references (:mod:`srs_core.publish.reference`)."""
    import os

    from srs_core.publish.reference import WRITE_ENV

    os.environ[WRITE_ENV] = "1"  # the kernels inherit it
    if not only:  # a full refresh starts from an empty work dir, as nbval does
        shutil.rmtree(ROOT / "_build" / "work" / "ci", ignore_errors=True)
    for name in only or NOTEBOOKS:
        nb = ROOT / "notebooks" / f"{name}.ipynb"
        _execute(nb, nb, {})
        print(f"[book] refreshed {nb.relative_to(ROOT)}", flush=True)


def copy_synthetic_runs(source_work: Path, target_work: Path) -> int:
    """Copy into ``target_work`` the finished runs of ``source_work`` that were
    trained on synthetic data, and its step-time measurements.

    A run's key hashes its configuration and its dataset's bytes, so a copied
    run is reused exactly where the same profile would train it again. Runs on
    real files are left behind (a dataset is real when its ``recipe.json``
    names a raw file, or has none to tell), so a book built from the copy
    without the real file sees none of them. ``make test`` uses this to build
    the ``ci`` book without the real file from the runs nbval has just
    trained. Returns the number of runs copied."""
    from srs_core.results import ResultsStore

    copied = 0
    for rec in ResultsStore(Path(source_work) / "results").records():
        recipe = Path(source_work) / "data" / Path(rec["config"]["data"]).name / "recipe.json"
        if not recipe.is_file() or json.loads(recipe.read_text()).get("raw_path") is not None:
            continue
        run = Path(source_work) / "results" / rec["config_hash"]
        shutil.copytree(run, Path(target_work) / "results" / run.name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".lock", ".*.tmp", "checkpoint.pt"))
        copied += 1
    scaling = Path(source_work) / "scaling.csv"
    if scaling.is_file():
        shutil.copy2(scaling, Path(target_work) / "scaling.csv")
    return copied


def layout_sources(src: Path) -> None:
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, src / name)
    if (src / "book").exists():
        shutil.rmtree(src / "book")
    shutil.copytree(ROOT / "book", src / "book")
    link = src / "srs_core"
    if not link.exists():
        link.symlink_to(ROOT / "srs_core", target_is_directory=True)
    vendor_mathjax(src)  # equations render offline


def build_html(src: Path) -> Path:
    # Sphinx's saved environment of an earlier build can keep a label that a page no longer has (a figure moved
    # between pages then fails -W as a duplicate): every build reads its pages afresh, which costs under a minute
    shutil.rmtree(src / "_build" / ".doctrees", ignore_errors=True)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src), "--builder", "html", "-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    return src / "_build" / "html" / "index.html"


def check_pages(html_root: Path) -> None:
    """Fail the build on any artefact a reader must not see (:mod:`srs_core.publish.pagetext`:
    missing values, floats for integers, issue numbers, absolute paths, network scripts, widgets,
    screenshots), then open the pages in headless Chromium and fail if a figure is missing."""
    from srs_core.publish import pagecheck, pagetext

    problems = pagetext.text_problems(html_root)
    for p in problems:
        print(f"[bookcheck] FAIL {p}")
    if problems:
        raise SystemExit(f"[book] {len(problems)} artefact(s) on the built pages (see above)")
    print("[bookcheck] ok: no page shows a missing value, a float for an integer, an issue number, an absolute path, "
          "a network script or a widget")
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        print("[book] figure check skipped: no headless Chromium here (Debian: apt-get install chromium)")
        return
    if pagecheck.main([str(html_root)]) != 0:
        raise SystemExit("[book] the built pages are missing figures (see above)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", choices=PROFILES)
    ap.add_argument("--only", nargs="*", help="execute only these notebooks (names without .ipynb)")
    ap.add_argument("--no-build", action="store_true", help="execute notebooks but do not build the HTML")
    ap.add_argument("--refresh-committed", action="store_true",
                    help="re-execute notebooks/*.ipynb in place with their own defaults (the ci profile) from an "
                    "empty work dir: this makes the outputs nbval compares against")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="override one profile parameter (YAML value), e.g. --set seeds=[0] or "
                    "--set 'raw_paths={yoochoose-100k: /elsewhere/yoochoose-clicks.dat}'")
    ap.add_argument("--src", type=Path, help="where the executed notebooks and the book go "
                    "(default: _build/<profile>/src)")
    ap.add_argument("--list", action="store_true", help="print the notebooks' paths in the order they run (the "
                    "figures read the diagnosis), and exit; `make nbval` runs them in this order")
    args = ap.parse_args(argv)
    if args.list:
        print(" ".join(f"notebooks/{name}.ipynb" for name in NOTEBOOKS))
        return 0
    overrides = parse_overrides(args.set)
    unknown = sorted(set(overrides) - set(load_profile(args.profile)))
    if unknown:
        raise SystemExit(f"--set {', '.join(unknown)}: not a parameter of profile {args.profile!r} "
                         f"(see params/{args.profile}.yaml)")
    if args.refresh_committed:
        refresh_committed(args.only)
        return 0
    t0 = time.perf_counter()
    src = (args.src or ROOT / "_build" / args.profile / "src").resolve()
    src.mkdir(parents=True, exist_ok=True)
    execute_notebooks(args.profile, src, args.only, overrides)
    if args.no_build:
        return 0
    layout_sources(src)
    index = build_html(src)
    check_pages(index.parent)
    print(f"[book] profile {args.profile} finished in {(time.perf_counter() - t0) / 60:.1f} min")
    print(f"[book] open {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
