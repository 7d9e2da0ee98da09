"""Progress bars: in a terminal or a notebook as usual, and as plain text in
the build log when the book is built.

``srs_core.publish.book`` runs the notebooks with ``SRS_PROGRESS=log`` in
their environment: every bar of the library then writes text lines to the
kernel's own standard error, which is the build's log, instead of a notebook
widget that would end up on the page (and that needs scripts from the
network to show).
"""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm as _auto
from tqdm.std import tqdm as _text

#: The environment variable, and its value, that sends progress to the log.
ENV, LOG = "SRS_PROGRESS", "log"


def tqdm(*args, **kwargs):
    """A tqdm bar: text on the process's original standard error under
    ``SRS_PROGRESS=log`` (updated at most every 30 s), else tqdm's automatic choice."""
    if os.environ.get(ENV) == LOG:
        kwargs.setdefault("file", sys.__stderr__)
        kwargs.setdefault("mininterval", 30.0)
        kwargs.setdefault("ascii", True)
        return _text(*args, **kwargs)
    return _auto(*args, **kwargs)
