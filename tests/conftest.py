import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test trains into its own runs/ folder, never the project's cache."""
    import paper_repro.engine as E

    monkeypatch.setattr(E, "RUNS", tmp_path / "runs")
    torch.manual_seed(0)
    yield


@pytest.fixture
def committed(tmp_path, monkeypatch):
    """The smoke profile treated as a committed one, with its teachers/ and runs/ in tmp_path."""
    import paper_repro.engine as E
    import paper_repro.teachers as TC

    monkeypatch.setattr(TC, "COMMITTED_PROFILES", ("smoke",))
    monkeypatch.setattr(TC, "TEACHERS", tmp_path / "teachers")
    monkeypatch.setattr(E, "RUNS", tmp_path / "runs")
    return tmp_path
