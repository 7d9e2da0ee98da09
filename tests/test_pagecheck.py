"""The page check that `make book` runs: it must see a missing figure."""
import base64
import shutil

import pytest

from srs_core.publish import pagecheck

pytestmark = pytest.mark.skipif(not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
                                reason="headless Chromium is not installed (make test installs it where it can)")

# a 1x1 PNG
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def page(figures: str) -> str:
    return f"<html><body><h1>Results</h1>{figures}</body></html>"


def test_a_page_with_its_figures_passes(tmp_path):
    (tmp_path / "img.png").write_bytes(PNG * 10)
    (tmp_path / "r.html").write_text(page('<figure id="fig-a"><img src="img.png"><figcaption>a</figcaption></figure>'))
    assert pagecheck.check_page(tmp_path, "r.html", ["fig-a"]) == []
    assert pagecheck.screenshot_path(tmp_path, "r.html").stat().st_size > 0
    assert not list(tmp_path.glob("*.png")) or all(p.name == "img.png" for p in tmp_path.glob("*.png"))


def test_missing_figures_and_broken_images_are_reported(tmp_path):
    (tmp_path / "r.html").write_text(page(
        '<figure id="fig-a"><pre>&lt;Figure size 640x480&gt;</pre></figure>'  # glued as text, not an image
        '<figure id="fig-b"><img src="gone.png"></figure>'))
    problems = pagecheck.check_page(tmp_path, "r.html", ["fig-a", "fig-b", "fig-c"])
    assert any("'fig-a' has no image" in p for p in problems)
    assert any("gone.png is missing" in p for p in problems)
    assert any("'fig-c' not on the page" in p for p in problems)
    assert pagecheck.check_page(tmp_path, "nope.html", []) == ["nope.html: page missing"]


