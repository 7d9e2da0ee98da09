"""The notebooks re-run through papermill with new parameters."""
import json
from pathlib import Path

import papermill as pm
import pytest

from srs_core.publish.book import NOTEBOOKS, load_profile
from srs_core.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"
SAMPLE = ROOT.parent / "shared" / "data" / "diginetica-sample" / "train-item-views.csv"


def run(name, out_dir, **params):
    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(NB / f"{name}.ipynb"), str(out), parameters=params, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False)
    return json.loads(out.read_text())


def checked_output(nb) -> str:
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert len(cells) == 1
    return "".join("".join(o.get("text", "")) for o in cells[0]["outputs"])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_documents_its_parameters(name):
    params = pm.inspect_notebook(str(NB / f"{name}.ipynb"))
    assert params, f"{name} has no parameters cell"
    for key, p in params.items():
        assert p["help"], f"{name}: parameter {key} has no comment"
        assert p["inferred_type_name"] != "None", f"{name}: parameter {key} has no type"


def test_profiles_only_set_parameters_that_some_notebook_declares():
    declared = set().union(*(pm.inspect_notebook(str(NB / f"{n}.ipynb")) for n in NOTEBOOKS))
    for profile in ("ci", "default", "full"):
        assert set(load_profile(profile)) <= declared, profile


def test_ci_profile_equals_the_committed_defaults():
    ci = load_profile("ci")
    for name in NOTEBOOKS:
        for key, p in pm.inspect_notebook(str(NB / f"{name}.ipynb")).items():
            if key in ci:
                assert eval(p["default"]) == ci[key], f"{name}.{key}: notebook default differs from params/ci.yaml"


def test_overridden_parameters_take_effect(tmp_path):
    work = tmp_path / "work"
    run("00-data", tmp_path, work_dir=str(work), datasets=["diginetica"], scale={"diginetica": 0.005})
    nb = run("01-experiment-1", tmp_path, work_dir=str(work), exp1_datasets=["diginetica"], models=["stamp"], epochs=1)
    text = checked_output(nb)
    *lines, check = [ln for ln in text.splitlines() if ln.strip()]
    # other parameters than the committed reference's: the metrics are not compared, and it says so
    assert check == "01-experiment-1: parameters differ from the reference's (epochs, exp1_datasets, models); metrics not compared"
    from srs_core.baselines import BASELINES

    assert {ln.split()[1] for ln in lines} == {"stamp", *BASELINES}
    assert all(ln.split()[0] == "diginetica" for ln in lines)
    neural = [r for r in ResultsStore(work / "results").records() if r["kind"] == "neural"]
    assert len(neural) == 1 and neural[0]["config"]["epochs"] == 1 and len(neural[0]["epochs"]) == 1


@pytest.mark.skipif(not SAMPLE.is_file(), reason="the real Diginetica sample (../shared/data) is absent")
def test_data_notebook_reads_a_real_dataset(tmp_path):
    work = tmp_path / "work"
    nb = run("00-data", tmp_path, work_dir=str(work), datasets=["diginetica"], raw_paths={"diginetica": str(SAMPLE)})
    stats = json.loads((work / "data" / "diginetica" / "stats.json").read_text())
    assert f"items={stats['n_items']} " in checked_output(nb)
    assert json.loads((work / "data" / "diginetica" / "recipe.json").read_text())["raw_path"] == str(SAMPLE)


@pytest.mark.parametrize("name, params, message", [
    ("01-experiment-1", {"models": ["bert4rec"]}, "unknown model"),
    ("00-data", {"datasets": ["diginetica"], "raw_paths": {"diginetica": "/no/such/file.csv"}}, "raw file for 'diginetica' not found"),
    ("02-experiment-2", {"exp2_datasets": ["movielens"]}, "not prepared"),
    ("04-scaling", {"pairings": ["ns-sparse"]}, "must look like 'loss+optimizer'"),
])
def test_bad_parameters_fail_early_with_a_clear_message(tmp_path, name, params, message):
    with pytest.raises(pm.PapermillExecutionError) as err:
        run(name, tmp_path, work_dir=str(tmp_path / "empty"), **params)
    assert message in str(err.value)
