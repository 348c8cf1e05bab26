import json
import subprocess
import sys

import pytest


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
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one `error:` line, the three ways in it


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


# -- every failure: one `error:` line, exit 2 (issue 16). In-process: main() is what the CLI runs. ------------
def _main(capsys, *args):
    from paper_repro.__main__ import main

    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_error(rc, err):
    assert rc == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]  # beside any progress bar
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("args,message", [
    (("train", "resnet20", "--max-epochs-now", "-3"), "--max-epochs-now: must be an integer >= 1, got -3"),
    (("train", "resnet20", "--budget-minutes", "-1"), "--budget-minutes: must be a number > 0, got -1.0"),
    (("prune", "--arch", "resnet20", "--target", "flops=0.5", "--budget-minutes", "nan"),
     "--budget-minutes: must be a number > 0, got nan"),
    (("prune", "--arch", "resnet20", "--target", "flops=0.5", "--max-epochs-now", "0"),
     "--max-epochs-now: must be an integer >= 1, got 0"),
    (("campaign", "--method-epochs", "0"), "--method-epochs: must be an integer >= 1, got 0"),
    (("count", "resnet20", "--width", "-0.5"), "--width: must be a number > 0, got -0.5"),
])
def test_bad_numbers_are_refused_in_one_line(capsys, args, message):
    assert _one_error(*_main(capsys, *args)[::2]) == f"error: {message}"


def test_json_lines_print_null_not_nan(capsys):
    rc, out, err = _main(capsys, "train", "resnet20", "--profile", "smoke", "--device", "cpu", "--max-epochs-now", "1")
    assert rc == 0, err

    def strict(name):
        raise ValueError(f"{name} in a JSON line")

    line = json.loads(out.strip().splitlines()[-1], parse_constant=strict)
    assert line["epochs_done"] == 1 and line["test_acc"] is None  # not finished: no test accuracy yet


def test_teacher_errors_never_say_delete_and_name_the_file(capsys, tmp_path):
    import torch

    from paper_repro.storage import save_checkpoint

    prune = ("prune", "--arch", "resnet20", "--target", "flops=0.5", "--profile", "smoke", "--device", "cpu",
             "--out", str(tmp_path / "run"), "--teacher")
    line = _one_error(*_main(capsys, *prune, str(tmp_path / "missing.pt"))[::2])
    assert line.startswith(f"error: {tmp_path / 'missing.pt'}: not found.")
    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 20)
    line = _one_error(*_main(capsys, *prune, str(tmp_path / "random.pt"))[::2])
    assert "not a PyTorch checkpoint" in line and "eights" not in line  # no weights_only notice
    save_checkpoint(tmp_path / "other.pt", dict(arch="resnet32", num_classes=10, width=0.25, model={}))
    line = _one_error(*_main(capsys, *prune, str(tmp_path / "other.pt"))[::2])
    assert "arch='resnet32' but 'resnet20' was expected" in line
    assert "Delete" not in line and "rm '" not in line and "--teacher" in line  # the user's file: kept
    assert (tmp_path / "other.pt").exists() and not (tmp_path / "run").exists()
    assert torch.load(tmp_path / "other.pt", weights_only=True)["arch"] == "resnet32"


def test_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    from paper_repro.__main__ import main
    from paper_repro.storage import CheckpointError

    prune = ["prune", "--arch", "resnet20", "--target", "flops=0.5", "--profile", "smoke", "--teacher",
             str(tmp_path / "missing.pt")]
    with pytest.raises(CheckpointError, match="not found"):
        main(["--debug", *prune])
    with pytest.raises(CheckpointError, match="not found"):
        main([*prune, "--debug"])
    monkeypatch.setenv("PAPER_REPRO_DEBUG", "1")
    with pytest.raises(CheckpointError, match="not found"):
        main(prune)


def test_unknown_or_damaged_data_is_one_line_naming_the_file(capsys, monkeypatch, tmp_path):
    from test_data import _write_fake_cifar10

    monkeypatch.setenv("PAPER_REPRO_ALLOW_MODIFIED_DATA", "0")  # main() sets it to 1: restored after the test
    folder = _write_fake_cifar10(tmp_path)
    train = ("train", "resnet20", "--profile", "cpu", "--device", "cpu", "--data-dir", str(tmp_path), "--no-download")
    line = _one_error(*_main(capsys, *train)[::2])
    assert line.startswith(f"error: {folder / 'data_batch_1'}: md5 ") and "--allow-modified-data" in line
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:1000])
    line = _one_error(*_main(capsys, *train, "--allow-modified-data")[::2])
    assert line.startswith(f"error: {folder / 'test_batch'}: not a readable CIFAR batch")
