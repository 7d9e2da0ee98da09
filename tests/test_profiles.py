"""Every profile orders the synthetic catalogues as the dissertation's Table 3 does."""
import pytest

from srs_core.data.dataset import ProcessedDataset
from srs_core.data.synthetic import PRESETS, catalogue_size, synthesize
from srs_core.experiments import TABLE3_PUBLISHED
from srs_core.publish.book import PROFILES, load_profile

BY_SIZE = sorted(TABLE3_PUBLISHED, key=lambda n: TABLE3_PUBLISHED[n]["n_items"])


def test_table3_order_is_what_the_profiles_are_held_to():
    assert BY_SIZE == ["yoochoose-1/64", "yoochoose-1/4", "diginetica", "meli2020"]


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_keeps_table3s_order_of_catalogue_sizes(profile):
    p = load_profile(profile)
    scale, raw = p.get("scale") or {}, p.get("raw_paths") or {}
    synthetic = [n for n in BY_SIZE if n in p["datasets"] and n not in raw]
    assert all(n in scale for n in synthetic), f"{profile}: a synthetic dataset has no scale"
    sizes = [catalogue_size(n, scale[n]) for n in synthetic]
    # at least 1.3x apart, so that preprocessing (which drops a few items) cannot swap two
    for (a, na), (b, nb) in zip(zip(synthetic, sizes), zip(synthetic[1:], sizes[1:])):
        assert nb >= 1.3 * na, f"{profile}: {b} has {nb} items, not clearly more than {a}'s {na} (Table 3 order)"


def test_the_ci_catalogues_keep_the_order_after_preprocessing(tmp_path):
    scale = load_profile("ci")["scale"]
    items = []
    for n in BY_SIZE:
        out = synthesize(n, scale[n], 0, tmp_path / n.replace("/", "-"), quiet=True)
        items.append(ProcessedDataset.load(out).n_items)
    assert items == sorted(items) and len(set(items)) == 4, dict(zip(BY_SIZE, items))


def test_the_catalogue_size_is_the_generators():
    from srs_core.data.synthetic import generate_events

    ev = generate_events("yoochoose-1/64", 0.004, seed=0)
    assert 0.8 * catalogue_size("yoochoose-1/64", 0.004) <= ev["item"].nunique() <= catalogue_size("yoochoose-1/64", 0.004)
    assert set(PRESETS) == set(BY_SIZE)


def test_the_book_folds_every_code_cell(tmp_path):
    """Results pages show figures and tables first: the committed notebooks
    tag each code cell hide-input, and the build tags papermill's injected one."""
    import nbformat

    from srs_core.publish.book import NOTEBOOKS, ROOT, fold_code

    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        bare = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "hide-input" not in c.metadata.get("tags", [])]
        assert not bare, (name, bare)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 0", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}),
                                         nbformat.v4.new_markdown_cell("text"),
                                         nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(x)")])
    nbformat.write(nb, tmp_path / "n.ipynb")
    fold_code(tmp_path / "n.ipynb")
    cells = nbformat.read(tmp_path / "n.ipynb", as_version=4).cells
    assert cells[1].metadata["tags"] == ["injected-parameters", "hide-input"] and "tags" not in cells[2].metadata
    assert "remove-cell" in cells[0].metadata["tags"]  # one parameter cell on the page: the one that ran
    assert "remove-cell" in cells[3].metadata["tags"]  # the regression check stays in the notebook, off the page
