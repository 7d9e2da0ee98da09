"""Run one ``srs`` command that signals itself at a chosen point (for
tests/test_kill_resume.py, which starts it as a subprocess).

    python tests/kill_at.py POINT N SIGNAL srs-arguments...

POINT is where the N-th event stops the process (``none`` never):

``mid-epoch``         the N-th training batch
``evaluation``        the N-th call of the evaluation (validation, then test, each epoch)
``checkpoint-write``  the N-th checkpoint.pt write: its temporary file is complete, not yet renamed
``result-write``      the N-th result.json write, likewise
``between-epochs``    just after the N-th result.json write (the first is the ``running`` record)

SIGNAL is ``KILL``, ``TERM`` or ``INT``. The patches wrap library functions in
this process only; the library itself has no test hooks.
"""
import os
import signal
import sys

from srs_core import cli, results
from srs_core.training import loop, step

point, n, sig, argv = sys.argv[1], int(sys.argv[2]), getattr(signal, "SIG" + sys.argv[3]), sys.argv[4:]
# Ctrl-C at a terminal always raises KeyboardInterrupt. A test run started as a
# background job of a non-interactive shell (`make test &`, nohup) inherits
# SIGINT ignored, and Python then installs no handler for it, so the INT case
# would test the launcher instead of `srs train`: give this process the
# terminal's handler back.
signal.signal(signal.SIGINT, signal.default_int_handler)
seen = {"count": 0}


def hit() -> None:
    seen["count"] += 1
    if seen["count"] == n:
        os.kill(os.getpid(), sig)


def counting(fn):
    def wrapper(*args, **kwargs):
        hit()
        return fn(*args, **kwargs)
    return wrapper


if point == "mid-epoch":
    step.TrainStep.__call__ = counting(step.TrainStep.__call__)
elif point == "evaluation":
    loop.evaluate = counting(loop.evaluate)
elif point in ("checkpoint-write", "result-write", "between-epochs"):
    target = "checkpoint.pt" if point == "checkpoint-write" else "result.json"
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) != target:
            return real_replace(src, dst, *args, **kwargs)
        if point != "between-epochs":
            hit()
        real_replace(src, dst, *args, **kwargs)
        if point == "between-epochs":
            hit()

    results.os.replace = replace  # results.py writes every file through os.replace
elif point != "none":
    raise SystemExit(f"unknown point {point!r}")

sys.exit(cli.main(argv))
