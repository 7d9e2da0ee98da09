"""The path every user takes: the whole `ci` book with the real file absent.

Our machines and CI have ``../shared/data``; a user's has not. This test hides
the real yoochoose-100k file behind a ``raw_paths`` override that points to a
missing file, runs every notebook of the ``ci`` profile (figures and
conclusions included) and builds the HTML book with warnings as errors, then
reads the built pages: each real-data section must say in one line that the
file is absent, and nothing may print "not measured (nan)".
"""
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSENT = "the real file of yoochoose-100k was absent"


def page_text(path: Path) -> str:
    html = path.read_text()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    missing = tmp / "no-shared" / "yoochoose-clicks.dat"
    cmd = [sys.executable, "-m", "srs_core.publish.book", "--profile", "ci", "--src", str(tmp / "src"),
           "--set", f"work_dir={tmp / 'work'}", "--set", f"raw_paths={{yoochoose-100k: {missing}}}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"the ci book failed without the real file:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return tmp / "src" / "_build" / "html", done.stdout


def test_the_ci_book_builds_without_the_real_file(book):
    html, log = book
    assert (html / "index.html").is_file()
    assert "[book] open" in log


@pytest.mark.parametrize("page, line", [
    ("notebooks/00-data.html", "yoochoose-100k: real file not found"),
    ("notebooks/01-experiment-1.html", "yoochoose-100k: not prepared (its real file is absent here)"),
    ("notebooks/02-experiment-2.html", "yoochoose-100k: not prepared (its real file is absent here)"),
    ("notebooks/03-experiment-3.html", "yoochoose-100k: not prepared (its real file is absent here)"),
    ("notebooks/06-diagnosis.html", "yoochoose-100k: not available here"),
    ("notebooks/05-figures.html", "The real file of yoochoose-100k was absent where this copy of the book was built"),
    ("book/06-conclusions.html", "The real file of yoochoose-100k was absent where this copy of the book was built"),
])
def test_each_real_data_section_says_the_file_is_absent(book, page, line):
    text = page_text(book[0] / page)
    assert line in text, f"{page} does not say that the real file is absent"


def test_no_page_prints_an_unmeasured_number_as_a_result(book):
    for page in ["book/06-conclusions.html", "notebooks/05-figures.html"]:
        text = page_text(book[0] / page)
        assert "(nan)" not in text, f"{page} prints a missing value as '(nan)'"
