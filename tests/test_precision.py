"""Precision is a setting of the run (issue 38): "auto" keeps every earlier run's settings and cache key; bf16 is
in the key; a CPU without native bf16 refuses a bf16 run in one line instead of emulating it for hours."""
import pytest
import torch

from paper_repro import config as C
from paper_repro import engine as E
from paper_repro import provenance as P
from paper_repro.method import resolve_method, run_key


def test_auto_is_absent_and_keeps_the_key():
    base = C.resolve_baseline("resnet56", "cpu")
    assert "precision" not in base
    for auto in (None, "auto"):
        cfg = C.resolve_baseline("resnet56", "cpu", precision=auto)
        assert cfg == base and C.config_key(cfg) == C.config_key(base)
    bf16 = C.resolve_baseline("resnet56", "cpu", precision="bf16")
    assert bf16["precision"] == "bf16" and C.config_key(bf16) != C.config_key(base)
    fp32 = C.resolve_baseline("resnet56", "cpu", precision="fp32")
    assert C.config_key(fp32) not in (C.config_key(base), C.config_key(bf16))


def test_method_runs_carry_the_students_precision():
    plain = resolve_method("resnet56", "flops=0.6", "cpu")
    bf16 = resolve_method("resnet56", "flops=0.6", "cpu", precision="bf16")
    assert "precision" not in plain["baseline"] and bf16["baseline"]["precision"] == "bf16"
    assert run_key(plain) != run_key(bf16)
    assert run_key(resolve_method("resnet56", "flops=0.6", "cpu", precision="auto")) == run_key(plain)


def test_unknown_precision_names_the_parameter_and_values():
    with pytest.raises(ValueError, match="precision: unknown value 'fp16'; valid: auto, fp32, bf16"):
        C.resolve_baseline("resnet56", "cpu", precision="fp16")


def test_autocast_per_precision_on_the_cpu():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    with E.autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16
    for p in ("auto", "fp32"):
        with E.autocast("cpu", p):
            assert conv(x).dtype == torch.float32


def test_bf16_refused_without_native_support(monkeypatch):
    monkeypatch.setattr(E, "native_bf16_cpu", lambda: False)
    with pytest.raises(RuntimeError, match="precision: this run is bf16 and this processor .* avx512_bf16, amx_bf16"):
        E.check_precision("bf16", "cpu")
    E.check_precision("fp32", "cpu")
    E.check_precision("auto", "cpu")
    monkeypatch.setattr(E, "native_bf16_cpu", lambda: True)
    E.check_precision("bf16", "cpu")


def test_native_bf16_is_read_from_the_flags(monkeypatch):
    monkeypatch.setattr(P, "cpu_flags", lambda: {"avx2", "avx512f"})
    assert not P.native_bf16_cpu()
    monkeypatch.setattr(P, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert P.native_bf16_cpu()


def test_a_lane_without_native_bf16_skips_a_bf16_teacher(monkeypatch, tmp_path):
    from paper_repro import teachers as T
    from paper_repro import train as TR

    monkeypatch.setattr(E, "native_bf16_cpu", lambda: False)
    monkeypatch.setattr(T, "TEACHERS", tmp_path)  # nothing committed there: the teacher would train
    bf16 = [a for a, o in C.PAPER_WIDTH["cpu"].items() if o.get("precision") == "bf16"]
    assert bf16, "the cpu profile's paper-width teachers name no bf16 run"
    rows = TR.train_teachers(bf16[:1], "cpu", paper_width=True, device="cpu", download=False)
    assert rows[0]["status"].startswith("skipped: precision: this run is bf16"), rows
