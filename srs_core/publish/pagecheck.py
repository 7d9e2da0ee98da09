"""Open the built book in headless Chromium and check that pages show their figures.

``python -m srs_core.publish.pagecheck _build/ci/src/_build/html`` renders each page
listed in ``EXPECTED`` with Debian's ``chromium`` (offline flags), reads the
DOM after scripts ran, and checks that the expected figures are there as
``<img>`` elements whose files exist and are non-empty PNGs. It also saves a
screenshot of each page for a person to look at, beside the HTML folder
(``screenshots/``), never among the published files. Exit status 1 names
every missing figure.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote

#: page (relative to the html root) -> figure labels it must show
EXPECTED = {
    "notebooks/01-experiment-1.html": ["fig-exp1"],
    "notebooks/02-experiment-2.html": ["fig-exp2"],
    "notebooks/03-experiment-3.html": ["fig-exp3"],
    "notebooks/04-scaling.html": ["fig-scaling"],
    "notebooks/basics-loss-cost.html": ["fig-loss-cost"],
    "notebooks/07-beyond.html": ["fig-frontier"],
}
#: page -> the sentence it prints instead of a figure of EXPECTED when its real data is absent
WITHOUT_DATA = {"notebooks/07-beyond.html": "not available here"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("headless Chromium is needed for the page check: `apt-get install chromium` (Debian)")


def render(page: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *extra,
                              page.as_uri()], capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"chromium failed on {page}: {res.stderr[-1000:]}")
    return res.stdout


def screenshot_path(html_root: Path, rel: str) -> Path:
    """Where the screenshot of page ``rel`` goes: beside the HTML folder, not in it."""
    return Path(html_root).parent / "screenshots" / (rel.replace("/", "__").removesuffix(".html") + ".png")


def check_page(html_root: Path, rel: str, labels: list[str]) -> list[str]:
    page = html_root / rel
    if not page.is_file():
        return [f"{rel}: page missing"]
    dom = render(page, "--dump-dom")
    shot = screenshot_path(html_root, rel)
    shot.parent.mkdir(parents=True, exist_ok=True)
    render(page, f"--screenshot={shot}", "--window-size=1280,2400")
    problems = []
    imgs = re.findall(r'<img[^>]*src="([^"]+)"', dom)
    for src in imgs:
        f = (page.parent / unquote(src)).resolve()
        if not src.startswith("data:") and (not f.is_file() or f.stat().st_size < 100):
            problems.append(f"{rel}: image {src} is missing or empty")
    if rel in WITHOUT_DATA and WITHOUT_DATA[rel] in dom:
        labels = []  # the page says its real data is absent, so its figures are not drawn
    for label in labels:
        m = re.search(rf'<figure[^>]*id="{re.escape(label)}"(.*?)</figure>', dom, flags=re.S)
        if not m:
            problems.append(f"{rel}: figure {label!r} not on the page")
        elif "<img" not in m.group(1):
            problems.append(f"{rel}: figure {label!r} has no image")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html_root", type=Path)
    args = ap.parse_args(argv)
    root = args.html_root.resolve()  # Chromium opens pages by file URI, which needs an absolute path
    problems = []
    for rel, labels in EXPECTED.items():
        problems += check_page(root, rel, labels)
    for p in problems:
        print(f"[bookcheck] FAIL {p}")
    if not problems:
        print(f"[bookcheck] ok: {len(EXPECTED)} pages show their figures (screenshots saved beside them)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
