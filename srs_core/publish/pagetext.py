"""What a built page must never show a reader: the text rules of the page check.

:func:`text_problems` reads every HTML page of a built book (its visible
text, and its script tags) and names each artefact it finds:

* a missing value printed as such: ``NaN``, ``nan``, ``(0.0000)``,
  ``not measured (–)``;
* an integer printed as a float (``1000000.000000``);
* a reference to the project's issue tracker (``issue 10``);
* an absolute path of the machine that built the book;
* a script loaded from the network (the book must read offline), or the
  state of notebook widgets (which needs such scripts);
* a screenshot among the published files.
"""
from __future__ import annotations

import re
from html import unescape
from pathlib import Path

# (name, pattern over a page's visible text) of every text artefact.
TEXT_RULES = (
    ("a missing value printed as NaN", re.compile(r"(?<![\w.])(?:NaN|nan)(?![\w.])")),
    ("a zero printed as '(0.0000)'", re.compile(r"\(0\.0000\)")),
    ("'not measured (–)'", re.compile(r"not measured \(–\)")),
    ("an integer printed as a float", re.compile(r"(?<![\w.])\d+\.0{5,}(?![\d])")),
    ("an issue number", re.compile(r"\b[Ii]ssues? \d+")),
    ("an absolute path of the build machine", re.compile(r"(?<![\w.~-])/(?:work|root|home|tmp|Users|mnt|srv)/[\w.-]+")),
)
NETWORK_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"(?:https?:)?//[^\"]+\"", re.I)
WIDGET_STATE = re.compile(r"application/vnd\.jupyter\.widget-(?:state|view)\+json")
SCREENSHOT = "*.screenshot.png"


#: A listing of code, such as a notebook's input or an example in the text, is read as code and not as a result.
CODE_LISTING = re.compile(r'<div class="highlight-(?!myst-ansi)[\w-]*[^"]*"[^>]*>\s*<div class="highlight">\s*<pre>.*?</pre>',
                          re.S)


def visible_text(html: str) -> str:
    """The text a reader sees as results and prose: tags, scripts, styles,
    code listings and inline code removed, entities decoded, spaces collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    html = CODE_LISTING.sub(" ", html)
    html = re.sub(r'<code class="[^"]*literal[^"]*">.*?</code>', " ", html, flags=re.S)  # code named in the prose
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def page_problems(rel: str, html: str) -> list[str]:
    """The artefacts of one page (``rel`` names it in the messages)."""
    text, out = visible_text(html), []
    for name, pattern in TEXT_RULES:
        m = pattern.search(text)
        if m:
            start = max(0, m.start() - 40)
            out.append(f"{rel}: {name}: ...{text[start:m.end() + 40].strip()}...")
    m = NETWORK_SCRIPT.search(html)
    if m:
        out.append(f"{rel}: a script from the network ({m.group(0)[:120]}); the book must read offline")
    if WIDGET_STATE.search(html):
        out.append(f"{rel}: notebook widget state (progress bars as widgets); progress belongs in the build log")
    return out


def text_problems(html_root: Path) -> list[str]:
    """Every artefact of every page under ``html_root`` (the built book's HTML),
    and every screenshot published among its files."""
    html_root = Path(html_root)
    out = []
    for page in sorted(html_root.rglob("*.html")):
        rel = str(page.relative_to(html_root))
        if rel.startswith(("_static/", "_sources/", "genindex", "search", "py-modindex")):
            continue
        out += page_problems(rel, page.read_text(encoding="utf-8", errors="replace"))
    out += [f"{p.relative_to(html_root)}: a screenshot among the published files" for p in html_root.rglob(SCREENSHOT)]
    return out
