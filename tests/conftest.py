import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test trains into its own runs/ folder, never the project's cache."""
    import paper_repro.engine as E

    monkeypatch.setattr(E, "RUNS", tmp_path / "runs")
    torch.manual_seed(0)
    yield
