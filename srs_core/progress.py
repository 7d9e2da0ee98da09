"""Progress bars: in a terminal or a notebook as usual, and as plain text in
a log file when the book is built.

``srs_core.publish.book`` runs the notebooks with ``SRS_PROGRESS`` set to a
log file in the build folder: every bar of the library then appends text
lines there, instead of drawing a notebook widget that would end up on the
page (and that needs scripts from the network to show). A kernel forwards
even its process's own standard error to the page, so a file is the only
place progress can go.
"""
from __future__ import annotations

import os
from pathlib import Path

from tqdm.auto import tqdm as _auto
from tqdm.std import tqdm as _text

#: The environment variable that names the progress log.
ENV = "SRS_PROGRESS"


def tqdm(*args, **kwargs):
    """A tqdm bar: text lines appended to the file ``SRS_PROGRESS`` names
    (updated at most every 30 s), else tqdm's automatic choice."""
    path = os.environ.get(ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # e.g. _build/ in a fresh clone
        kwargs.setdefault("file", open(path, "a", encoding="utf-8"))  # noqa: SIM115 - tqdm writes until it closes
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("ascii", True)
        return _text(*args, **kwargs)
    return _auto(*args, **kwargs)
