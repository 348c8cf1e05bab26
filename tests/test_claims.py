"""The claims each notebook tests: verdicts computed from the tables, never typed by hand."""
import math

import pandas as pd
import pytest

from paper_repro.reproduction import claims as C
from paper_repro.reproduction import noise as N
from paper_repro.reproduction import verdicts as V


def test_noise_from_seeds_and_the_one_seed_fallback():
    n = N.from_values([0.90, 0.92, 0.94], (0, 1, 2), 10000)
    assert n.sd_points == pytest.approx(2.0) and n.values_points[0] == 90.0
    assert n.source == "seeds 0, 1, 2 (accuracy, %: 90.00, 92.00, 94.00)"  # σ recomputable from the row alone
    on = N.from_values([0.90, 0.92], (0, 1), 10000, "cpu:1threads:AVX512:Intel(R) Xeon(R) Processor")
    assert on.source.startswith("seeds 0, 1 on cpu:1threads:AVX512:Intel(R) Xeon(R) Processor (")  # what σ covers
    close = N.from_values([0.8907, 0.8910], (0, 1), 10000)  # two close seeds: σ 0.02 says little
    floor = N.sampling_sd_points((0.8907 + 0.8910) / 2, 10000)
    assert close.sd_points == pytest.approx(floor) and "below the test-set sampling error" in close.source
    three = N.from_values([0.8907, 0.8910, 0.8909], (0, 1, 2), 10000)  # three seeds: their σ as measured
    assert three.sd_points < floor and "sampling" not in three.source
    one = N.from_values([0.9], (0,), 10000)
    assert one.sd_points == pytest.approx(100 * math.sqrt(0.9 * 0.1 / 10000)) and "one seed" in one.source
    with pytest.raises(ValueError, match="n_images"):
        N.sampling_sd_points(0.5, 0)
    with pytest.raises(ValueError, match="profile"):
        N.noise_seeds("gpu")


def _summary(acc, base, params, flops):
    return dict(pruned_acc=acc, baseline_acc=base, params_pruned=params, flops_pruned=flops)


def test_main_verdicts_judge_ratio_exactly_and_accuracy_within_noise():
    noise = {a: N.Noise(0.2, "seeds 0, 1, 2") for a in C.PAPER_CLAIMS}
    got = {v.claim_id: v for v in C.main_verdicts({
        "vgg_small": _summary(0.905, 0.91, 0.935, 0.7),  # −0.5 ± 0.4: above −1 → supported
        "resnet56": _summary(0.88, 0.91, 0.5, 0.59),  # FLOPs short of 60.33%; −3 points
        "mobilenetv2": _summary(0.902, 0.91, 0.5, 0.70)}, noise, "02")}  # −0.8 ± 0.4 straddles −1
    assert got["vgg_small_params_pruned"].verdict == V.SUPPORTED
    assert got["vgg_small_accuracy_kept"].verdict == V.SUPPORTED
    assert got["resnet56_flops_pruned"].verdict == V.CONTRADICTED
    assert got["resnet56_accuracy_kept"].verdict == V.CONTRADICTED
    assert got["mobilenetv2_accuracy_kept"].verdict == V.INCONCLUSIVE
    assert got["resnet56_accuracy_kept"].noise_source == "seeds 0, 1, 2"
    assert got["vgg_small_params_pruned"].noise_source == "exact"
    # the paper's other ratio, a measured value: vgg_small 70% of FLOPs (ours 70.0), resnet56 53.61% of params (50.0)
    assert got["vgg_small_other_ratio_as_paper"].verdict == V.SUPPORTED
    assert got["resnet56_other_ratio_as_paper"].value == pytest.approx(3.61)
    assert got["resnet56_other_ratio_as_paper"].verdict == V.CONTRADICTED
    assert "mobilenetv2_other_ratio_as_paper" not in got  # the paper reports only its speed-up
    assert C.paper_other_ratio("resnet56") == ("params", 53.61) and C.paper_other_ratio("mobilenetv2") is None


def _arms(accs: dict, met=True):
    return pd.DataFrame([dict(arm=a, best_acc=v, target_met=met) for a, v in accs.items()])


def test_a_gap_inside_the_noise_of_a_difference_is_inconclusive():
    ours, kd = "KD + features + mutual (ours)", "KD only"
    losses = _arms({kd: 0.900, "KD + features": 0.905, "KD + mutual": 0.93, ours: 0.95,
                    "ours + labels (CE)": 0.94, "labelled KD (blog: α=0.7, τ=2)": 0.99})
    got = {v.claim_id: v for v in C.loss_verdicts(losses, N.Noise(0.5, "seeds 0, 1"), "03")}
    # +0.5 points with σ_diff = 0.71: inside ±2σ → never "supported"
    assert got["features_add_to_kd"].verdict == V.INCONCLUSIVE
    assert got["features_add_to_kd"].noise == pytest.approx(math.sqrt(2) * 0.5)
    assert got["mutual_adds_to_kd"].verdict == V.SUPPORTED  # +3 ± 1.4
    assert got["label_free_matches_labels"].verdict == V.SUPPORTED  # +1 ± 1.4 ≥ −1
    assert got["label_free_matches_labelled_kd"].verdict == V.CONTRADICTED  # −4 points


def test_an_arm_short_of_the_target_is_named_in_the_measurement():
    t = pd.DataFrame([dict(arm="N = 1", students=1, best_acc=0.9, target_met=False),
                      dict(arm="N = 2", students=2, best_acc=0.95, target_met=True)])
    (v,) = C.students_verdicts(t, N.Noise(0.1, "seeds 0, 1"), "04")
    assert "N = 1 short of the target" in v.measured and v.verdict == V.SUPPORTED


def test_unknown_arm_is_a_clear_error():
    with pytest.raises(ValueError, match="arm: no row 'KD \\+ features'; rows: x"):
        C.loss_verdicts(_arms({"x": 0.5}), N.Noise(0.1, "s"), "03")


def test_finetuning_gain_and_granularity_and_speedup():
    sparsity = _arms({f"criterion={c}": 0.9 for c in ("taylor", "l1", "bn", "random")}
                     | {f"selection={s}": 0.9 for s in ("dynamic", "static", "fixed")}
                     | {"penalty=progressive": 0.9, "penalty=constant": 0.9})
    ft = pd.DataFrame(dict(finetune_epochs=[0, 1, 2], best_acc=[0.80, 0.85, 0.86]))
    got = {v.claim_id: v for v in C.sparsity_verdicts(sparsity, ft, N.Noise(0.2, "seeds 0, 1"), "05")}
    assert got["taylor_beats_l1"].verdict == V.INCONCLUSIVE  # equal accuracies: never supported
    assert got["no_finetuning_needed"].verdict == V.CONTRADICTED  # fine-tuning gains 6 points
    gran = pd.DataFrame(dict(granularity=["fine", "fine", "filter", "filter"], sparsity=[0.0, 0.5, 0.0, 0.5],
                             dense_flops_pruned=[0.0, 0.0, 0.0, 0.49]))
    assert {v.claim_id: v.verdict for v in C.granularity_verdicts(gran, "06")} == {
        "granularity_fine_dense_compute": V.SUPPORTED, "granularity_filter_dense_compute": V.SUPPORTED}
    lat = pd.DataFrame(dict(arch=["mobilenetv2"], batch_size=[64], device=["cpu:2threads"], speedup=[1.8],
                            speedup_sd=[0.05], flops_ratio=[3.0]))
    (v,) = C.deployment_verdicts(lat, "08", scale="width 1.0")
    assert v.verdict == V.CONTRADICTED and v.claim_id == "mobilenetv2_speedup_width_1.0" and v.noise == 0.05
    (far,) = C.deployment_verdicts(lat.assign(speedup=6.2, flops_ratio=5.9), "08", scale="width 1.0")
    assert far.verdict == V.NOT_COMPARABLE and "83.1%" in far.measured  # 5.9x is not the claim's 3x


def test_verdicts_round_trip_through_the_csv(monkeypatch, tmp_path):
    import paper_repro.reproduction.outputs as R

    monkeypatch.setattr(R, "output_dirs", lambda profile: (tmp_path, tmp_path))
    monkeypatch.setattr(R, "_record", lambda *a, **k: None)
    stamp = dict(profile="smoke", dataset="synthetic", dataset_official=False, dataset_fingerprint="f", seed=0,
                 device="cpu", commit="c")
    a = C.granularity_verdicts(pd.DataFrame(dict(granularity=["filter"], sparsity=[0.5],
                                                 dense_flops_pruned=[0.4])), "06")
    b = [V.verdict("x", "claim x", "src", "m", None, 0.0, ">", 0.0, "02")]  # not testable: no value
    V.write_verdicts(a, "06", "smoke", stamp)
    V.write_verdicts(b, "02", "smoke", stamp)
    V.write_verdicts([], "05", "smoke", stamp)  # a notebook with no claim at this profile
    back = V.read_verdicts("smoke")
    assert [v.claim_id for v in back] == ["x", a[0].claim_id]  # in notebook order, whatever ran last
    assert back[0].verdict == V.NOT_TESTABLE and back[0].value is None and back[1] == a[0]


def test_ablation_figure_draws_the_noise_bars():
    import matplotlib

    matplotlib.use("Agg")
    from paper_repro.studies.ablation import arms_figure

    df = pd.DataFrame([dict(arm=a, students=2, best_acc=acc, mean_acc=acc - 0.01, baseline_acc=0.9, flops_pruned=f,
                            target="flops=0.60", target_met=True) for a, acc, f in (("a", 0.85, 0.6), ("b", 0.86, 0.7365))])
    noise = N.Noise(0.5, "seeds 0, 1, 2")
    fig = arms_figure(df, "t", noise=noise)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    label = "±√2σ: bars apart = a difference beyond ±2σ"
    assert label in labels and "selected" in labels
    bars = handles[labels.index(label)]  # ±√2σ around each selected bar: apart only beyond the difference's ±2√2σ
    (segments,) = bars.lines[2]
    widths = sorted(abs(seg[1][0] - seg[0][0]) for seg in segments.get_segments())
    assert widths == pytest.approx([2 * math.sqrt(2) * 0.5] * 2)
    flops = fig.axes[1]  # the overshooting arm is cross-hatched and says so; the one at the target is plain
    assert [p.get_hatch() for p in flops.patches[:2]] == [None, "xx"]
    assert any(t.get_text().endswith("73.65: overshoots") for t in flops.texts)


def per_image_like(base, lose: int, gain: int):
    """A correctness vector of the same images as `base`: `lose` of its correct images wrong, `gain` of its wrong
    ones right (the first ones of each), so that the paired difference to `base` is (gain − lose)/n."""
    import numpy as np

    out = np.array(base, dtype=bool)
    out[np.flatnonzero(out)[:lose]] = False
    out[np.flatnonzero(~np.asarray(base, dtype=bool))[:gain]] = True
    return out


def test_paper_width_verdicts_compare_only_finished_runs_at_the_same_ratio():
    """Notebook 02's paper-width block: the run's target and the teacher's goal are checks; the paper's other ratio
    is a measured value; accuracies are compared image by image (paired SE), "not comparable" more than 1 point of
    FLOPs away, and "not testable yet" (with how far it is) while a run trains."""
    import numpy as np

    from paper_repro.paired import paired_difference
    from paper_repro.reproduction.tables import paper_width_table

    def rec(run, kind, seed=0, **s):
        return dict(run=run, kind=kind, seed=seed, state="finished" if s else "epoch 3 of 15",
                    summary=s or None, config=dict(baseline=dict(train_subset=50_000)) if s else None)
    table = paper_width_table([
        rec("method-s0", "method", pruned_acc=0.8907, params_pruned=0.5268, flops_pruned=0.5990, epochs=15),
        rec("control-distill", "control_distill"),
        rec("control-scratch", "control_scratch", pruned_acc=0.8707, params_pruned=0.55, flops_pruned=0.6005),
        rec("peer-tp", "peer_tp", pruned_acc=0.9107, params_pruned=0.70, flops_pruned=0.6200),
        rec("peer-l1", "peer_l1", final_acc=0.8850, params_pruned=0.50, flops_pruned=0.5950),  # classic's field
        rec("finetune", "finetune", pruned_acc=0.8900, params_pruned=0.5268, flops_pruned=0.5990)], 0.8958)
    teacher = np.arange(10_000) < 8958
    method = per_image_like(teacher, 150, 99)  # 89.07%: −0.51 points, 249 images discordant
    per_image = {"teacher": teacher, "method-s0": method, "control-scratch": per_image_like(method, 250, 50),
                 "peer-tp": per_image_like(method, 0, 200), "peer-l1": per_image_like(method, 100, 43),
                 "finetune": per_image_like(method, 100, 93)}
    got = {v.claim_id: v for v in C.paper_width_verdicts(table, per_image, 0.8958, 0.925, "resnet56", "flops=0.6",
                                                         "02")}
    assert got["teacher_converged_resnet56_w1"].verdict == V.CONTRADICTED  # 89.58 < 92.5
    assert got["resnet56_w1_flops_pruned"].verdict == V.CONTRADICTED  # 59.90 < 60: exact, σ = 0
    assert got["resnet56_w1_other_ratio_as_paper"].value == pytest.approx(0.93)  # |52.68 − 53.61|
    assert got["resnet56_w1_other_ratio_as_paper"].verdict == V.SUPPORTED
    kept = got["resnet56_w1_accuracy_kept"]  # the paired difference to its own teacher
    assert kept.value == pytest.approx(-0.51)
    assert kept.noise == pytest.approx(paired_difference(method, teacher).se_points)
    assert kept.verdict == V.SUPPORTED and "paired on 10,000 test images" in kept.noise_source
    scratch = got["resnet56_w1_beats_uniform_scratch"]
    assert scratch.value == pytest.approx(2.0) and scratch.verdict == V.SUPPORTED
    assert "seed 0: +2.00 ± 0.17, McNemar p" in scratch.noise_source  # √300 / 100 points
    pending = got["resnet56_w1_beats_uniform_distilled"]
    assert pending.verdict == V.NOT_YET and pending.value is None
    assert "control-distill epoch 3 of 15" in pending.measured
    assert "control-distill epoch 3 of 15" in V.sentence(pending, "cpu") and "at the cpu profile" not in \
        V.sentence(pending, "cpu")
    assert got["resnet56_w1_matches_peer_tp"].verdict == V.NOT_COMPARABLE  # 62.00% vs 59.90%
    assert got["resnet56_w1_matches_peer_l1"].verdict == V.SUPPORTED  # +0.57 ≥ −1
    assert got["resnet56_w1_finetune_adds"].value == pytest.approx(-0.07)
    assert got["resnet56_w1_finetune_adds"].verdict == V.INCONCLUSIVE  # −0.07 ± 2 × 0.14: 193 images discordant
    with pytest.raises(ValueError, match="no per-image record of the finished run 'peer-l1'"):
        C.paper_width_verdicts(table, {k: v for k, v in per_image.items() if k != "peer-l1"}, 0.8958, 0.925,
                               "resnet56", "flops=0.6", "02")


def test_paper_width_verdicts_average_the_method_seeds():
    """Two finished method seeds: the value is the mean of their paired differences, σ the combined SE
    (paired.combine_seeds), and the source gives each seed's own difference and processor."""
    import numpy as np

    from paper_repro.paired import combine_seeds
    from paper_repro.reproduction.tables import paper_width_table

    def rec(run, kind, seed=0, procs="AMD EPYC", **s):
        return dict(run=run, kind=kind, seed=seed, state="finished", summary=s,
                    config=dict(baseline=dict(train_subset=50_000)), chunks=[dict(processor=procs, device=None,
                                                                                 epochs=[1, 15])])
    runs = [rec("method-s0", "method", pruned_acc=0.8907, flops_pruned=0.599, params_pruned=0.5268),
            rec("method-s1", "method", 1, "Intel Xeon", pruned_acc=0.8933, flops_pruned=0.5987)]
    runs += [rec(n, k, pruned_acc=0.88, flops_pruned=0.6) for n, k in (
        ("control-distill", "control_distill"), ("control-scratch", "control_scratch"), ("peer-tp", "peer_tp"),
        ("finetune", "finetune"))] + [rec("peer-l1", "peer_l1", final_acc=0.8836, flops_pruned=0.5994)]
    table = paper_width_table(runs, 0.8958)
    teacher = np.arange(10_000) < 8958
    s0, s1 = per_image_like(teacher, 297, 246), per_image_like(teacher, 304, 279)
    other = per_image_like(teacher, 300, 178)
    per_image = dict(teacher=teacher, **{"method-s0": s0, "method-s1": s1}, **{r["run"]: other for r in runs[2:]})
    got = {v.claim_id: v for v in C.paper_width_verdicts(table, per_image, 0.8958, None, "resnet56", "flops=0.6",
                                                         "02")}
    kept = got["resnet56_w1_accuracy_kept"]
    want = combine_seeds({0: (s0, teacher), 1: (s1, teacher)})
    assert kept.value == pytest.approx((-0.51 - 0.25) / 2) and kept.noise == pytest.approx(want.se_points)
    assert "mean over seeds 0, 1" in kept.measured
    assert "seed 0 (AMD EPYC): -0.51 ± 0.23" in kept.noise_source
    assert "seed 1 (Intel Xeon): -0.25 ± 0.24" in kept.noise_source
    assert "σ covers the test images and the spread of the seeds" in kept.noise_source
    # a peer or control that had less than its own recipe is reported, never judged "supported" (issue 36 item 4)
    short = {"peer-tp": "15 of its recipe's 200 epochs"}
    got = {v.claim_id: v for v in C.paper_width_verdicts(table, per_image, 0.8958, None, "resnet56", "flops=0.6",
                                                         "02", short=short)}
    tp = got["resnet56_w1_matches_peer_tp"]
    assert tp.verdict == V.SHORT_OF_RECIPE and tp.value is not None and "15 of its recipe's 200 epochs" in tp.measured
    assert got["resnet56_w1_matches_peer_l1"].verdict != V.SHORT_OF_RECIPE


def test_an_engine_question_the_budget_cut_in_its_first_epoch_is_not_answered():
    """Issue 36 item 7: where both arms had made their cut by the end of epoch 1, the criterion, selection and
    penalty comparisons say so instead of judging; where one arm still cut later, they are judged as before."""
    arms = [f"criterion={c}" for c in ("taylor", "l1", "bn", "random")] \
        + [f"selection={s}" for s in ("dynamic", "static", "fixed")] + ["penalty=progressive", "penalty=constant"]
    accs = {a: 0.90 for a in arms} | {"criterion=taylor": 0.95}
    early = pd.DataFrame([dict(arm=a, best_acc=accs[a], target="flops=0.6", flops_pruned=0.60,
                               pruned_after_first_epoch=0.58) for a in arms])
    got = {v.claim_id: v for v in C.sparsity_verdicts(early, None, N.Noise(0.2, "seeds 0, 1"), "05")}
    for cid in ("taylor_beats_l1", "dynamic_beats_static", "progressive_beats_constant"):
        assert got[cid].verdict == V.BUDGET_DECIDED, cid
    assert "58.0% and 58.0%" in got["taylor_beats_l1"].measured
    late = early.assign(pruned_after_first_epoch=[0.30] + [0.58] * (len(arms) - 1))  # taylor still cut later
    got = {v.claim_id: v for v in C.sparsity_verdicts(late, None, N.Noise(0.2, "seeds 0, 1"), "05")}
    assert got["taylor_beats_l1"].verdict == V.SUPPORTED  # +5 ± 0.57: judged
    assert got["dynamic_beats_static"].verdict == V.BUDGET_DECIDED
    no_record = early.drop(columns="pruned_after_first_epoch")  # tables written before the column: judged as before
    got = {v.claim_id: v for v in C.sparsity_verdicts(no_record, None, N.Noise(0.2, "seeds 0, 1"), "05")}
    assert got["taylor_beats_l1"].verdict == V.SUPPORTED
