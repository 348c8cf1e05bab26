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
