"""The path every user takes: the whole `ci` book with the real files absent.

Our machines and CI have ``../shared/data``; a user's has not. This test hides
the real yoochoose-100k file behind a ``raw_paths`` override that points to a
missing file, runs every notebook of the ``ci`` profile (figures and
conclusions included) and builds the HTML book with warnings as errors, then
reads the built pages: each real-data section must say in one line that the
file is absent, and nothing may print "not measured (nan)".

``make test`` runs nbval first, which trains the same ``ci`` runs with the file
present. Where that work dir exists, this test starts from a copy of its
synthetic-data runs (``copy_synthetic_runs``: the real-data runs stay behind),
so it trains only what the missing file changes and still executes every
notebook and builds every page. ``SRS_USER_PATH_FRESH=1`` trains everything
from scratch instead.
"""
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSENT = "the real file of yoochoose-100k was absent"
NBVAL_WORK = ROOT / "_build" / "work" / "ci"  # what `make nbval` leaves behind


def page_text(path: Path) -> str:
    html = path.read_text()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    missing = tmp / "no-shared" / "yoochoose-clicks.dat"
    missing_split = tmp / "no-shared" / "diginetica-srgnn"
    if (NBVAL_WORK / "results").is_dir() and not os.environ.get("SRS_USER_PATH_FRESH"):
        from srs_core.publish.book import copy_synthetic_runs

        print(f"reusing {copy_synthetic_runs(NBVAL_WORK, tmp / 'work')} synthetic-data runs of {NBVAL_WORK}")
    cmd = [sys.executable, "-m", "srs_core.publish.book", "--profile", "ci", "--src", str(tmp / "src"),
           "--set", f"work_dir={tmp / 'work'}", "--set", f"raw_paths={{yoochoose-100k: {missing}, diginetica-srgnn: {missing_split}}}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"the ci book failed without the real file:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return tmp / "src" / "_build" / "html", done.stdout


def test_the_ci_book_builds_without_the_real_file(book):
    html, log = book
    assert (html / "index.html").is_file()
    assert "[book] open" in log


@pytest.mark.parametrize("page, line", [
    ("notebooks/00-data.html", "yoochoose-100k: real data not found"),
    ("notebooks/01-experiment-1.html", "yoochoose-100k: not prepared (its real file is absent here)"),
    ("notebooks/02-experiment-2.html", "yoochoose-100k: not prepared (its real file is absent here)"),
    ("notebooks/03-experiment-3.html", "yoochoose-100k: not prepared (its real file is absent here)"),
    ("notebooks/06-diagnosis.html", "yoochoose-100k: not available here"),
    ("notebooks/07-beyond.html", "yoochoose-100k: not available here"),
    ("notebooks/00-data.html", "diginetica-srgnn: real data not found"),
    ("notebooks/models-table1.html", "diginetica-srgnn: not available here (its files are absent)"),
    ("notebooks/08-real-diginetica.html", "diginetica-srgnn: not available here (its files are absent)"),
    ("notebooks/05-figures.html", "The real file of yoochoose-100k was absent where this copy of the book was built"),
    ("book/06-conclusions.html", "The real file of yoochoose-100k was absent where this copy of the book was built"),
])
def test_each_real_data_section_says_the_file_is_absent(book, page, line):
    text = page_text(book[0] / page)
    assert line in text, f"{page} does not say that the real file is absent"


@pytest.mark.parametrize("page", ["notebooks/01-experiment-1.html", "notebooks/06-diagnosis.html",
                                  "notebooks/07-beyond.html", "notebooks/models-table1.html",
                                  "notebooks/08-real-diginetica.html", "notebooks/using-a-trained-model.html"])
def test_a_page_says_once_that_its_real_file_is_absent(book, page):
    html = (book[0] / page).read_text()
    outputs = "".join(re.findall(r'<div class="cell_output.*?</pre>', html, flags=re.S))  # what the cells print, not their code
    said = sum(outputs.count(p) for p in ("not prepared (its real file is absent here)", "not available here"))
    assert said == 1, f"{page} says {said} times that a real file is absent; once is enough"


def test_no_page_prints_an_unmeasured_number_as_a_result(book):
    for page in ["book/06-conclusions.html", "notebooks/05-figures.html", "notebooks/07-beyond.html"]:
        text = page_text(book[0] / page)
        assert "(nan)" not in text, f"{page} prints a missing value as '(nan)'"


def test_only_synthetic_runs_are_copied(tmp_path):
    """The copy that speeds this test up must not carry a real-data run into
    the book built without the real file."""
    import json

    from srs_core.publish.book import copy_synthetic_runs
    from srs_core.results import ResultsStore

    src, dst = tmp_path / "src", tmp_path / "dst"
    recipes = {"diginetica": None, "yoochoose-100k": "/data/yoochoose-clicks.dat"}
    store = ResultsStore(src / "results")
    for i, (name, raw) in enumerate(recipes.items()):
        (src / "data" / name).mkdir(parents=True)
        (src / "data" / name / "recipe.json").write_text(json.dumps({"name": name, "raw_path": raw}))
        store.put({"config_hash": f"run{i}", "status": "complete", "config": {"data": f"/elsewhere/data/{name}"}})
    store.put({"config_hash": "nodata", "status": "complete", "config": {"data": "/elsewhere/data/gone"}})
    (store.run_dir("run0") / "checkpoint.pt").write_bytes(b"x")
    (src / "scaling.csv").write_text("n_items\n10\n")
    assert copy_synthetic_runs(src, dst) == 1
    assert [r["config_hash"] for r in ResultsStore(dst / "results").records()] == ["run0"]
    assert not (dst / "results" / "run0" / "checkpoint.pt").exists()
    assert (dst / "scaling.csv").read_text() == "n_items\n10\n"
