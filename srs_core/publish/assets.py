"""Static assets that the built book serves itself, so that it reads offline.

Sphinx's default is to load MathJax 3 from a CDN (jsdelivr), so a reader
without a network sees raw TeX. :func:`vendor_mathjax` copies a local MathJax
instead, from the PyPI package ``jupyter-server-mathjax`` (the copy of
MathJax 2.7 that Jupyter itself serves), into the book sources, where
``_config.yml`` points Sphinx at it::

    sphinx:
      config:
        html_static_path: [book/_static]
        mathjax_path: mathjax/MathJax.js
        mathjax2_config: {config: [TeX-AMS-MML_HTMLorMML-full.js], ...}

That package ships one combined configuration,
``config/TeX-AMS-MML_HTMLorMML-full.js`` (TeX and MathML input, HTML-CSS
output), and the STIX-Web fonts. Only the files that configuration can fetch
for TeX input and HTML-CSS output are copied (about 3 MB of 12 MB): the
MathML input, SVG output, the accessibility explorer (and its speech rules)
and the menu translations other than English are left out.
"""
from __future__ import annotations

import shutil
from pathlib import Path

# Where the copy goes, relative to the book sources; ``html_static_path``
# names its parent, so the built book has it under ``_static/mathjax/``.
# Deliberately not ``<src>/_static``: when that folder exists, Jupyter Book
# adds every .js file under it to every page.
MATHJAX_DIR = Path("book") / "_static" / "mathjax"

# Glob patterns, relative to the package's static folder.
MATHJAX_FILES = (
    "LICENSE",
    "MathJax.js",
    "config/TeX-AMS-MML_HTMLorMML-full.js",
    # Menu, zoom, tex2jax, ...: most are inlined in the combined config, the
    # rest (HelpDialog, FontWarnings, ...) are loaded on demand.
    "extensions/*.js",
    "extensions/HTML-CSS/*.js",
    # TeX macros loaded on first use (\boldsymbol, \cancel, \color, ...).
    "extensions/TeX/**/*.js",
    "jax/input/TeX/*.js",
    # Operator dictionary chunks, loaded on first use.
    "jax/element/mml/**/*.js",
    # HTML-CSS output: autoloaded elements and the STIX-Web font metrics.
    "jax/output/HTML-CSS/**/*.js",
    "fonts/HTML-CSS/STIX-Web/woff/*.woff",
    "localization/en/*.js",
)


def mathjax_source() -> Path:
    """The ``static`` folder of the installed ``jupyter-server-mathjax``."""
    try:
        import jupyter_server_mathjax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "the book needs a local MathJax: pip install jupyter-server-mathjax==0.2.6"
        ) from exc
    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (static / "MathJax.js").is_file():
        raise SystemExit(f"no MathJax.js in {static}: reinstall jupyter-server-mathjax")
    return static


def vendor_mathjax(src: Path) -> None:
    """Copy the MathJax files the book needs into ``<src>/book/_static/mathjax``.

    Whatever was there before is replaced.
    """
    static = mathjax_source()
    dest = Path(src) / MATHJAX_DIR
    if dest.exists():
        shutil.rmtree(dest)
    copied = 0
    for pattern in MATHJAX_FILES:
        matches = sorted(p for p in static.glob(pattern) if p.is_file())
        if not matches:
            raise SystemExit(f"jupyter-server-mathjax has no {pattern} under {static}")
        for path in matches:
            target = dest / path.relative_to(static)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied += 1
    print(f"[book] MathJax: {copied} files copied to {dest}", flush=True)
