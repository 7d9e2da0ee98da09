"""A new loss needs its own file and one entry in the registry, nothing else.

A child process writes a toy loss module (in-batch softmax with a temperature
option of its own), adds its class to ``srs_core.losses.registry.LOSSES``
before the rest of the library is imported (as a line in the registry's tuple
would), and then uses it through the library's ordinary paths: the
``TrainConfig`` fields, checks and identity, ``srs train``'s flags, a training
run, a run's name, the figures' label and colour. No other module is edited.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TOY = '''
from dataclasses import dataclass
import torch.nn.functional as F
from srs_core.losses.base import Loss
from srs_core.losses.options import LossOptions, option


@dataclass(frozen=True)
class InBatchOptions(LossOptions):
    toy_temperature: float = option(1.0, "divide the in-batch scores by T", metavar="T",
                                    check=lambda v: None if v > 0 else f"toy_temperature must be positive, got {v}",
                                    misuse="--toy-temperature {value} applies to the toy loss only; {loss!r} ignores it")


class InBatch(Loss):
    name = "toy"
    label = "in-batch softmax (toy)"
    colour = 6
    options = InBatchOptions

    @classmethod
    def build(cls, settings, n_items, counts, device):
        loss = cls(score_scale=settings.score_scale)
        loss.temperature = settings.toy_temperature
        return loss

    @classmethod
    def describe(cls, settings):
        return [f"T={settings.toy_temperature:g}"] if settings.toy_temperature != 1.0 else []

    def compute(self, session, targets, embedding, negatives, l2):
        items = embedding(targets)
        scores = self.session(session, l2) @ items.T / self.temperature
        return F.cross_entropy(scores, torch_arange(len(targets), scores.device))


def torch_arange(n, device):
    import torch
    return torch.arange(n, device=device)
'''

CHILD = '''
import contextlib, io, json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from srs_core.losses import registry
import toyloss
registry.LOSSES["toy"] = toyloss.InBatch  # the one line a new loss adds to the registry's tuple

from srs_core import cli, plots
from srs_core.data.synthetic import synthesize
from srs_core.diagnosis import variant
from srs_core.training import TrainConfig
from srs_core.training.loop import fit

out = {}
data = synthesize("diginetica", 0.005, 0, Path(sys.argv[1]) / "data", quiet=True)
cfg = TrainConfig(data=str(data), model="stamp", loss="toy", optimizer="sparse_fast", toy_temperature=0.5, epochs=1)
out["field"] = cfg.toy_temperature
out["in_identity"] = "toy_temperature" in json.dumps(cfg.identity("f" * 16, "valid"))
for bad in (dict(loss="toy", toy_temperature=-1.0), dict(loss="ce", toy_temperature=0.5)):
    try:
        TrainConfig(data=str(data), model="stamp", **bad)
        out.setdefault("refused", []).append(None)
    except ValueError as e:
        out.setdefault("refused", []).append(str(e))
record = fit(cfg, Path(sys.argv[1]) / "run", quiet=True)
out["trained"] = record["status"], record["best"]["mrr_at_20"]
out["variant"] = variant(record["config"])
out["label"], out["coloured"] = plots.LABELS["toy"], "toy" in plots.COLOURS
text = io.StringIO()
with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
    cli.main(["train", "--help"])
out["flag"] = "--toy-temperature" in text.getvalue()
print(json.dumps(out))
'''


def test_a_new_loss_is_its_file_and_a_registry_entry(tmp_path):
    (tmp_path / "toyloss.py").write_text(TOY)
    (tmp_path / "child.py").write_text(CHILD)
    done = subprocess.run([sys.executable, str(tmp_path / "child.py"), str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["field"] == 0.5 and out["in_identity"]
    assert "toy_temperature must be positive" in out["refused"][0]
    assert "applies to the toy loss only" in out["refused"][1]
    assert out["trained"][0] == "complete" and out["trained"][1] > 0
    assert out["variant"].startswith("toy") and "T=0.5" in out["variant"]
    assert out["label"] == "in-batch softmax (toy)" and out["coloured"] and out["flag"]
