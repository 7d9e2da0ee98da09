"""Progress goes to the text log SRS_PROGRESS names, whose folder may not exist yet (a fresh clone)."""
from srs_core import progress


def test_progress_lines_go_to_the_named_log_even_in_a_missing_folder(tmp_path, monkeypatch):
    log = tmp_path / "_build" / "progress.log"
    monkeypatch.setenv(progress.ENV, str(log))
    for _ in progress.tqdm(range(3), desc="runs", mininterval=0):
        pass
    assert "runs: 100%" in log.read_text() and "3/3" in log.read_text()
