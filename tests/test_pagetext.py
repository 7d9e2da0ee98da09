"""The text rules of the page check: every artefact a reader must not see is caught, and a clean page passes."""
import base64

import pytest

from srs_core.publish import pagetext

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def page(body: str) -> str:
    return f"<html><body><h1>Results</h1>{body}</body></html>"



CLEAN = ('<p>MRR@20 of 0.1734 ± 0.0012 over 2 seeds; 1,280,000 items; see ../shared/data/x (a relative path).</p>'
         '<div class="highlight-ipython3 notranslate"><div class="highlight"><pre>x = float("nan")  # /work/code</pre>'
         '</div></div><p>the value <code class="docutils literal notranslate"><span class="pre">NaN</span></code> means absent</p>')


@pytest.mark.parametrize("artefact, expected", [
    ("<td>NaN</td>", "NaN"), ("<td>nan</td>", "NaN"), ("<td>0.31 (0.0000)</td>", "(0.0000)"),
    ("<p>ns: not measured (–)</p>", "not measured"), ("<td>1000000.000000</td>", "integer printed as a float"),
    ("<p>as issue 10 reported</p>", "issue number"), ("<p>file /work/main/_build/x.csv</p>", "absolute path"),
    ('<script src="https://cdn.example/require.js"></script>', "from the network"),
    ('<script type="application/vnd.jupyter.widget-state+json">{}</script>', "widget state"),
    ('<div class="output stream highlight-myst-ansi notranslate"><div class="highlight"><pre>mean NaN</pre></div></div>',
     "NaN"),
])
def test_every_artefact_a_reader_must_not_see_is_caught(tmp_path, artefact, expected):
    assert pagetext.page_problems("p.html", page(CLEAN)) == []
    problems = pagetext.page_problems("p.html", page(CLEAN + artefact))
    assert len(problems) == 1 and expected in problems[0], problems


def test_screenshots_among_the_published_files_are_caught(tmp_path):
    (tmp_path / "a.html").write_text(page(CLEAN))
    assert pagetext.text_problems(tmp_path) == []
    (tmp_path / "a.screenshot.png").write_bytes(PNG)
    assert pagetext.text_problems(tmp_path) == ["a.screenshot.png: a screenshot among the published files"]
