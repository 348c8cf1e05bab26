import json
import subprocess
import sys


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "paper_repro", *args], capture_output=True, text=True)


def test_count_json():
    r = _cli("count", "resnet56", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert (out["arch"], out["params"], out["macs"]) == ("resnet56", 853_018, 125_485_696)


def test_count_unknown_arch_lists_names():
    r = _cli("count", "resnet57")
    assert r.returncode != 0 and "resnet56" in r.stderr and "mobilenetv2" in r.stderr


def test_train_missing_data_is_one_clear_message(tmp_path):
    r = _cli("train", "resnet20", "--profile", "cpu", "--data-dir", str(tmp_path), "--no-download")
    assert r.returncode == 2
    assert "prepare_cifar10.py" in r.stderr and "Traceback" not in r.stderr


def test_prune_bad_input_is_one_line_before_training(tmp_path):
    r = _cli("prune", "--arch", "resnet20", "--target", "flops=1.5", "--profile", "smoke", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "target: ratio must be in (0, 1)" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
    r = _cli("prune", "--arch", "resnet20", "--target", "flops=0.5", "--student-views", "mixed")
    assert r.returncode == 2 and "own" in r.stderr and "shared" in r.stderr
    r = _cli("prune", "--arch", "resnet20", "--target", "flops=0.5", "--compile", "fast")
    assert r.returncode == 2 and "reduce-overhead" in r.stderr and "off" in r.stderr


def test_prune_cli_prints_the_summary(tmp_path):
    out = tmp_path / "run"
    r = _cli("prune", "--arch", "resnet20", "--target", "flops=0.3", "--profile", "smoke", "--epochs", "1",
             "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(r.stdout.strip().splitlines()[-1])
    assert s["arch"] == "resnet20" and s["dataset_official"] is False and s["max_abs_logit_diff"] <= 1e-4
    assert s["params_after"] <= s["params_before"] and (out / "pruned.pt2").is_file()


def test_compile_flag_maps_off_to_eager():
    from paper_repro.__main__ import _compile_mode

    assert _compile_mode("off") is False and _compile_mode("reduce-overhead") == "reduce-overhead"
