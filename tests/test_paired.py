"""Paired statistics (paper_repro/paired.py): the per-image records, the paired difference and its SE, McNemar, the
bootstrap, the combination over seeds, and what pairing changes in a verdict. The committed records of the cpu
paper-width study are read (never recomputed: that is `paper_width.write_study_per_image`)."""
import json
import math

import numpy as np
import pytest

from paper_repro import paired as Q
from paper_repro.reproduction import paper_width as P
from paper_repro.reproduction import verdicts as V
from paper_repro.reproduction.noise import sampling_sd_points

STAMP = dict(dataset="cifar10", dataset_official=False, dataset_fingerprint="0123456789abcdef")
ALL = dict(split="test", n=None)


def like(base, lose: int, gain: int) -> np.ndarray:
    """`base` with `lose` of its correct images wrong and `gain` of its wrong ones right."""
    out = np.array(base, dtype=bool)
    out[np.flatnonzero(out)[:lose]] = False
    out[np.flatnonzero(~np.asarray(base, dtype=bool))[:gain]] = True
    return out


@pytest.mark.parametrize("n", [1, 7, 8, 9, 10_000])
def test_bits_round_trip(n):
    correct = np.random.default_rng(n).random(n) < 0.9
    text = Q.pack_bits(correct)
    assert len(text) == 4 * math.ceil(math.ceil(n / 8) / 3)  # one bit per image, base64
    assert np.array_equal(Q.unpack_bits(text, n), correct)


def test_record_round_trips_and_refuses_other_data_or_length_naming_the_file(tmp_path):
    network = tmp_path / "pruned_state.pt"
    network.write_bytes(b"weights")
    correct = np.random.default_rng(0).random(1000) < 0.85
    path = tmp_path / Q.PER_IMAGE
    rec = Q.write_per_image(path, correct, STAMP, ALL, network, "cpu")
    assert rec["correct"] == int(correct.sum()) and rec["network_sha256"] == Q.file_sha256(network)
    back = Q.read_per_image(path, STAMP["dataset_fingerprint"], 1000, ALL)
    assert np.array_equal(back.correct, correct) and back.accuracy == pytest.approx(correct.mean())
    with pytest.raises(Q.PerImageError, match=f"{path}: measured on data 0123456789abcdef, this data is ffff"):
        Q.read_per_image(path, "ffff")
    with pytest.raises(Q.PerImageError, match=f"{path}: 1000 images, the comparison is on 10000"):
        Q.read_per_image(path, n_images=10_000)
    with pytest.raises(Q.PerImageError, match=str(path)):
        Q.read_per_image(path, test_subset=dict(split="test", n=500, seed=2))
    written = json.loads(path.read_text())
    path.write_text(json.dumps(dict(written, n_images=992)))  # bits of more images than it says
    with pytest.raises(Q.PerImageError, match=f"{path}: 125 bytes of bits, 992 images need 124"):
        Q.read_per_image(path)
    path.write_text(json.dumps(dict(written, correct=written["correct"] + 1)))  # altered bits or count
    with pytest.raises(Q.PerImageError, match=f"{path}: its bits count"):
        Q.read_per_image(path)
    with pytest.raises(Q.PerImageError, match=f"{tmp_path / 'absent.json'}: no per-image record"):
        Q.read_per_image(tmp_path / "absent.json")


def test_paired_se_is_the_sd_of_the_per_image_differences_over_root_n():
    a = [1, 1, 1, 0, 0, 1, 0, 1]
    b = [1, 0, 1, 1, 0, 0, 0, 1]  # d = 0, 1, 0, −1, 0, 1, 0, 0: mean 1/8, Σd² = 3
    p = Q.paired_difference(a, b)
    assert p.points == pytest.approx(12.5) and (p.only_a, p.only_b, p.n_images) == (2, 1, 8)
    variance = (3 - 8 * (1 / 8) ** 2) / 7  # sample variance of d, by hand
    assert p.se_points == pytest.approx(100 * math.sqrt(variance / 8))
    with pytest.raises(ValueError, match="same images"):
        Q.paired_difference(a, b[:-1])


def test_mcnemar_on_known_tables():
    def pair(only_a, only_b, both=50):
        a = np.r_[np.ones(both + only_a), np.zeros(only_b)].astype(bool)
        b = np.r_[np.ones(both), np.zeros(only_a), np.ones(only_b)].astype(bool)
        return Q.paired_difference(a, b)
    assert pair(1, 4).p_mcnemar == pytest.approx(0.375)  # 2 × (C(5,0) + C(5,1)) / 2⁵
    assert pair(0, 5).p_mcnemar == pytest.approx(0.0625)  # 2 / 2⁵
    assert pair(3, 3).p_mcnemar == 1.0 and pair(0, 0).p_mcnemar == 1.0
    # Agresti's table (794, 150; 86, 570): χ² with the continuity correction (|150 − 86| − 1)² / 236 = 16.82,
    # p 4.1e-5
    agresti = pair(150, 86, both=794)
    assert agresti.p_mcnemar_chi2 == pytest.approx(4.11e-5, rel=0.01)
    assert agresti.p_mcnemar == pytest.approx(agresti.p_mcnemar_chi2, rel=0.2)  # exact ≈ χ² at these counts


def test_bootstrap_agrees_with_the_paired_se_and_is_seeded():
    teacher = np.arange(10_000) < 8958
    method = like(teacher, 297, 246)
    d = method.astype(int) - teacher.astype(int)
    b = Q.paired_bootstrap(d, seed=0)
    p = Q.paired_difference(method, teacher)
    assert b["points"] == pytest.approx(p.points) and b["se_points"] == pytest.approx(p.se_points, rel=0.06)
    assert b["low"] < p.points < b["high"] and b == Q.paired_bootstrap(d, seed=0)
    assert Q.paired_bootstrap(d, seed=1)["se_points"] != b["se_points"]


def test_combined_seeds_cover_the_images_and_the_spread_of_the_seeds():
    teacher = np.arange(10_000) < 8958
    one = Q.combine_seeds({0: (like(teacher, 297, 246), teacher)})
    assert one.se_points == pytest.approx(one.per_seed[0].se_points) and one.seed_se_points == 0.0
    # two seeds that err on the same images: no spread, the images' SE alone
    same = Q.combine_seeds({0: (like(teacher, 297, 246), teacher), 1: (like(teacher, 297, 246), teacher)})
    assert same.seed_se_points == 0.0 and same.se_points == pytest.approx(same.per_seed[0].se_points)
    # two seeds far apart (−0.51 and +2.00) on few discordant images: the seeds' spread dominates
    apart = Q.combine_seeds({0: (like(teacher, 60, 9), teacher), 1: (like(teacher, 0, 200), teacher)})
    assert apart.points == pytest.approx((-0.51 + 2.00) / 2)
    d = np.stack([like(teacher, 60, 9), like(teacher, 0, 200)]).astype(float) - teacher
    k, n = d.shape  # the two-way random-effects SE of a grand mean, by the textbook's mean squares
    ms_seeds = n * d.mean(1).var(ddof=1)
    ms_images = k * d.mean(0).var(ddof=1)
    ms_residual = ((d - d.mean(1)[:, None] - d.mean(0) + d.mean()) ** 2).sum() / ((k - 1) * (n - 1))
    assert apart.se_points == pytest.approx(100 * math.sqrt((ms_seeds + ms_images - ms_residual) / (n * k)))
    assert apart.seed_se_points > apart.image_se_points


def test_pairing_decides_where_the_unpaired_noise_cannot():
    """A network 0.6 points below its teacher, the loss on 60 images only: unpaired (the binomial floor of one
    accuracy) the interval reaches past −1, inconclusive; paired it is [−0.75, −0.45]: supported. A difference
    spread over many discordant images stays inconclusive either way: pairing removes only what the images share."""
    teacher = np.arange(10_000) < 8958
    method = like(teacher, 60, 0)
    unpaired = V.judge(-0.6, -1.0, ">=", sampling_sd_points(method.mean(), 10_000))
    p = Q.paired_difference(method, teacher)
    assert unpaired == V.INCONCLUSIVE and V.judge(p.points, -1.0, ">=", p.se_points) == V.SUPPORTED
    peer = like(method, 0, 30)  # +0.3 points over a peer, on 30 images
    q = Q.paired_difference(peer, method)
    assert V.judge(0.3, 0.0, ">", V.difference_noise(0.31)) == V.INCONCLUSIVE
    assert V.judge(q.points, 0.0, ">", q.se_points) == V.SUPPORTED
    spread = Q.paired_difference(like(method, 300, 330), method)
    assert V.judge(spread.points, 0.0, ">", spread.se_points) == V.INCONCLUSIVE


def test_the_committed_records_reproduce_each_committed_accuracy():
    """Every finished run of the cpu paper-width study and its teacher: a per-image record beside it, of the data
    it trained on and of the network beside it, whose count of correct images is the accuracy its records state."""
    profile = "cpu"
    records = P.load_study_per_image(profile)  # checks data, network sha256 and accuracy, or raises naming the file
    finished = [n for n, r in P.runs(profile).items() if P.run_state(r, profile) == "finished"]
    assert sorted(records) == sorted(finished) and {"teacher", "method-s0", "method-s1"} <= set(records)
    fingerprint = json.loads((P.STORE / profile / "method-s0" / "config.json").read_text())["dataset_fingerprint"]
    for name, rec in records.items():
        assert rec.dataset_fingerprint == fingerprint and rec.test_subset == ALL and rec.correct.size == 10_000, name
        assert int(rec.correct.sum()) == round(P.committed_accuracy(P.runs(profile)[name], profile) * 10_000), name
    assert records["method-s0"].accuracy == 0.8907 and records["teacher"].accuracy == 0.8958


def test_study_records_are_written_by_evaluation_and_refused_when_stale(committed, monkeypatch):
    """`write_study_per_image` scores a finished run's committed network (no training: here an untrained one on
    the smoke stand-in's data); `load_study_per_image` refuses a record whose count is not the run's recorded
    accuracy, one of another network than the one beside it, and a missing one, each naming the file."""
    import torch

    from paper_repro.export import write_pruned_state
    from paper_repro.models import build_model

    monkeypatch.setattr(P, "STORE", committed / "paper_width")
    d = P.runs("smoke")["peer-l1"].folder("smoke")
    model = build_model("resnet20", 10, width=0.5)
    write_pruned_state(d, "resnet20", 10, 0.5, model.widths(), model.state_dict())
    (d / "summary.json").write_text(json.dumps({"final_acc": 0.5}))
    row = P.write_study_per_image("smoke", ["peer-l1", "method-s0"])
    assert row[1] == dict(run="method-s0", status="not started")
    acc = row[0]["accuracy"]
    assert row[0]["committed"] == 0.5 and row[0]["equal"] == (acc == 0.5)
    (d / "summary.json").write_text(json.dumps({"final_acc": acc + 0.01}))
    with pytest.raises(Q.PerImageError, match=f"{d / Q.PER_IMAGE}: .* does not reproduce its recorded accuracy"):
        P.load_study_per_image("smoke")
    (d / "summary.json").write_text(json.dumps({"final_acc": acc}))
    rec = P.load_study_per_image("smoke")["peer-l1"]
    assert rec.accuracy == acc and rec.test_subset == dict(split="test", n=256, seed=2)  # smoke: 256 of them
    with pytest.raises(Q.PerImageError, match="this data is ffff"):
        P.load_study_per_image("smoke", "ffff")
    torch.manual_seed(1)
    retrained = build_model("resnet20", 10, width=0.5)
    write_pruned_state(d, "resnet20", 10, 0.5, retrained.widths(), retrained.state_dict())
    with pytest.raises(Q.PerImageError, match="measured another pruned_state.pt than the one beside it"):
        P.load_study_per_image("smoke")
    (d / Q.PER_IMAGE).unlink()
    with pytest.raises(Q.PerImageError, match=r"no per-image record; rewrite it with .*write_study_per_image"):
        P.load_study_per_image("smoke")
