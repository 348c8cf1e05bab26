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


@pytest.fixture
def kill_writes_at(monkeypatch):
    """kill_writes_at(module, name): `module`'s writers raise when they reach the file `name`, as a process killed
    there would stop; returns the exception class raised."""
    class Killed(Exception):
        pass

    def arm(module, name):
        for writer in ("write_bytes", "write_json"):
            real = getattr(module, writer, None)
            if real is not None:
                def stop(path, *a, _real=real, **k):
                    if path.name == name:
                        raise Killed(name)
                    return _real(path, *a, **k)
                monkeypatch.setattr(module, writer, stop)
        return Killed
    return arm
