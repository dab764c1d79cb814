"""The transfer matrix's measures and statistics, on numbers worked out by hand or by scipy."""
import json
import math

import pytest
from scipy import stats as sps

from suite import transfer


def test_student_and_welch_intervals_come_from_scipy():
    mean, ci = transfer.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and ci == pytest.approx(sps.t.ppf(0.975, 2) / 3 ** 0.5)
    # beyond 30 degrees of freedom too (where a table of 30 critical values would fall back to 1.96)
    values = [float(i % 7) for i in range(41)]
    _, ci = transfer.mean_ci(values)
    assert ci == pytest.approx(sps.t.ppf(0.975, 40) * sps.tstd(values) / 41 ** 0.5)
    a, b = [2.0, 2.4, 1.9, 2.2], [1.0, 1.1, 0.9]
    w = transfer.welch_test(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert w["p"] == pytest.approx(ref.pvalue) and w["t"] == pytest.approx(ref.statistic)
    va, vb = sps.tvar(a) / 4, sps.tvar(b) / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)  # Welch–Satterthwaite
    assert w["df"] == pytest.approx(df)
    assert w["ci"] == pytest.approx(sps.t.ppf(0.975, df) * math.sqrt(va + vb))
    low, high = ref.confidence_interval(0.95)
    assert (w["diff"] - w["ci"], w["diff"] + w["ci"]) == (pytest.approx(low), pytest.approx(high))
    assert transfer.welch(a, b) == (pytest.approx(w["diff"]), pytest.approx(w["ci"]))
    # no spread: Welch's test is undefined, so there is no p-value and no interval (not "exact")
    for a, b in (([1.0, 1.0], [0.0, 0.0]), ([1.0, 1.0], [1.0, 1.0])):
        w = transfer.welch_test(a, b)
        assert math.isnan(w["p"]) and math.isnan(w["ci"]) and w["no_spread"] and w["diff"] == a[0] - b[0]
    assert math.isnan(transfer.welch_test([1.0], [0.0, 1.0])["p"])


def test_holm_step_down():
    adjusted = transfer.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    # sorted 0.01, 0.03, 0.04 over m = 3 tests: 0.03, max(0.03, 0.06), max(0.06, 0.04)
    assert adjusted["a"] == pytest.approx(0.03) and adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06) and math.isnan(adjusted["d"])
    assert transfer.holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}


def test_bootstrap_interval_brackets_the_difference():
    low, high = transfer.bootstrap_ci([2.0, 2.2, 2.1, 1.9], [1.0, 1.2, 0.8, 1.1], 2000)
    assert low < 1.025 < high and 0.7 < low and high < 1.4
    assert transfer.bootstrap_ci([2.0, 2.2, 2.1, 1.9], [1.0, 1.2, 0.8, 1.1], 2000) == (low, high)  # seeded


def test_effective_data_reads_the_scratch_curve():
    scratch = [[50, 0.2], [100, 0.4], [150, 0.5]]
    # the fine-tuned arm has 0.3 at its first check (step 50): scratch gets there at step 75
    d = transfer.effective_data(scratch, [[50, 0.3], [100, 0.45], [150, 0.52]], 150)
    assert d["scratch_steps"] == pytest.approx(75) and d["steps"] == pytest.approx(25)
    assert d["fraction"] == pytest.approx(25 / 150) and d["censored"] is None
    assert transfer.fmt_effective(d) == "+0.17"
    # at its final score (0.52) scratch never gets there: a lower bound, "> budget"
    end = transfer.effective_data(scratch, [[50, 0.3], [100, 0.45], [150, 0.52]], 150, at="last")
    assert end["censored"] == ">" and end["steps"] == 0 and transfer.fmt_effective(end) == "> +0.00"
    # already reached by scratch's first check: an upper bound
    low = transfer.effective_data(scratch, [[50, 0.1], [150, 0.3]], 150)
    assert low["censored"] == "<=" and low["steps"] == 0 and transfer.fmt_effective(low) == "<= +0.00"
    # a worse fine-tuned arm at the end: scratch needs fewer steps, negative transfer
    worse = transfer.effective_data(scratch, [[50, 0.1], [150, 0.3]], 150, at="last")
    assert worse["steps"] == pytest.approx(75 - 150) and worse["censored"] is None
    # the first crossing counts, even if the curve dips later
    assert transfer.first_reach([[1, 0.0], [2, 1.0], [3, 0.0], [4, 1.0]], 0.5) == (1.5, None)


def test_area_under_the_curve_and_best_check():
    assert transfer.auc([[50, 0.2], [100, 0.4], [150, 0.6]]) == pytest.approx(0.4)
    assert transfer.auc([[100, 0.7]]) == 0.7
    assert transfer.best_val([[50, 0.2], [100, 0.6], [150, 0.6]]) == (100, 0.6)
    assert transfer.mean_curve([[[1, 0.0], [2, 1.0]], [[1, 1.0], [2, 3.0], [3, 5.0]]]) == [(1, 0.5), (2, 2.0)]


def _cell(arm_source, lr, seed, test, curve, arch="tiny"):
    arm = "scratch" if arm_source == "scratch" else f"{arm_source}/full"
    return {"target": "t", "source": arm_source, "adapt": "full", "lr": lr, "seed": seed, "arch": arch, "arm": arm,
            "metric": "accuracy", "higher_is_better": True, "val": curve[-1][1], "test": test, "raw_test": test,
            "curve": curve}


def test_summary_picks_each_arms_rate_on_validation_and_corrects_across_the_matrix():
    cells = []
    for seed in range(3):
        e = 0.01 * seed
        # Validation (the curve's last point) and test rank the rates differently in both arms, so
        # only a choice made on validation passes: on test, scratch would take 3e-3 (0.55 > 0.50)
        # and a would take 1e-2 (0.80 > 0.70).
        cells += [_cell("scratch", 1e-3, seed, 0.50 + e, [[50, 0.2], [100, 0.4], [150, 0.5 + e]]),
                  _cell("scratch", 3e-3, seed, 0.55 + e, [[50, 0.3], [100, 0.35], [150, 0.4]]),
                  _cell("scratch", 1e-2, seed, 0.30 + e, [[50, 0.1], [100, 0.2], [150, 0.3]]),
                  _cell("a", 1e-3, seed, 0.60 + e, [[50, 0.3], [100, 0.5], [150, 0.6 + e]]),
                  _cell("a", 3e-3, seed, 0.70 + e, [[50, 0.4], [100, 0.6], [150, 0.7 + e]]),
                  _cell("a", 1e-2, seed, 0.80 + e, [[50, 0.4], [100, 0.6], [150, 0.65]]),
                  _cell("b", 1e-3, seed, 0.50 + 2 * e, [[50, 0.2], [100, 0.4], [150, 0.5 + e]])]
    for arm, lr in (("scratch", 3e-3), ("a/full", 1e-2)):  # the data does disagree: test alone would pick these
        test_mean = {r: sum(c["test"] for c in cells if c["arm"] == arm and c["lr"] == r) for r in (1e-3, 3e-3, 1e-2)}
        assert max(test_mean, key=test_mean.get) == lr
    s = transfer.summarize(cells, {"lrs": [1e-3, 3e-3, 1e-2], "target_steps": 150, "reference": {"t": 0.6}})["t"]
    # scratch: best validation at 1e-3, the low edge of the sweep; a: 3e-3, inside it
    assert s["scratch"]["best_lr"] == 1e-3 and s["scratch"]["lr_at_edge"]
    assert s["scratch"]["val_by_lr"] == {"0.001": pytest.approx(0.51), "0.003": pytest.approx(0.4), "0.01": pytest.approx(0.3)}
    assert s["scratch"]["mean"] == pytest.approx(0.51) and s["a/full"]["mean"] == pytest.approx(0.71)  # the chosen rate's test
    assert s["a/full"]["best_lr"] == 3e-3 and not s["a/full"]["lr_at_edge"]
    assert s["b/full"]["lr_at_edge"]  # swept at one rate only
    a = s["a/full"]
    assert a["gain"] == pytest.approx(0.2)
    assert a["gain_p"] == pytest.approx(sps.ttest_ind([0.7, 0.71, 0.72], [0.5, 0.51, 0.52], equal_var=False).pvalue)
    # Holm over the two gains in the matrix (a and b)
    p_a, p_b = a["gain_p"], s["b/full"]["gain_p"]
    assert p_a < p_b and a["gain_p_holm"] == pytest.approx(2 * p_a)
    assert s["b/full"]["gain_p_holm"] == pytest.approx(min(1.0, max(2 * p_a, p_b)))
    assert a["distinguishable"] and not s["b/full"]["distinguishable"]
    # a reaches 0.4 at step 50; the scratch mean curve gets there at step 100: 50 steps of data
    assert a["effective_data"]["steps"] == pytest.approx(50) and a["effective_data"]["fraction"] == pytest.approx(1 / 3)
    assert a["auc_mean"] == pytest.approx(transfer.auc(transfer.mean_curve([c["curve"] for c in cells
                                                                              if c["arm"] == "a/full" and c["lr"] == 3e-3])))
    assert s["scratch"]["of_reference"] == pytest.approx(0.51 / 0.6)
    assert s["scratch"]["val_best_step"] == 150 and s["scratch"]["test_best"] is None


def test_noise_units_colour_is_unit_free():
    assert transfer.noise_units(0.5, 1.0) == 0.5 and transfer.noise_units(-30.0, 1.0) == -2.0
    assert transfer.noise_units(0.1, float("nan")) == 0.0


def _sized(arm_source, size, seed, score, adapt="full", lr=1e-3):
    cell = _cell(arm_source, lr, seed, score, [[10, score - 0.1], [20, score]])
    arm = "scratch" if arm_source == "scratch" else f"{arm_source}/{adapt}"
    return {**cell, "size": size, "adapt": adapt, "arm": arm, "test_best": score}


def test_a_known_transfer_law_is_recovered_from_the_data_axis():
    """Scratch's score is a known function of its data, S(D) = 1 - D^-0.3; a fine-tuned arm on D_F
    samples scores S(D_F + k * D_F^alpha), with seed noise of +-0.002. The summary's effective data
    and fit recover k = 40 and alpha = 0.45 (k within 15%, alpha within 0.05; the bootstrap
    interval over seeds brackets both)."""
    k, alpha = 40.0, 0.45
    law = lambda d: 1 - d ** -0.3  # noqa: E731
    noise = (-0.002, 0.0, 0.002)
    sizes = [100, 200, 400, 800, 1600]
    scratch_sizes = sorted({*sizes, *(round(50 * 1.25 ** i) for i in range(26))})  # 50 .. 13,235 samples
    cells = [_sized("scratch", d, s, law(d) + e) for d in scratch_sizes for s, e in enumerate(noise)]
    cells += [_sized("a", d, s, law(d + k * d ** alpha) + e) for d in sizes for s, e in enumerate(noise)]
    summary = transfer.summarize(cells, {"lrs": [1e-3], "target_steps": 20})
    assert set(summary) >= {f"t (n={d})" for d in sizes}
    law_a = transfer.scaling(summary, resamples=300)["t"]["arms"]["a/full"]
    for p, d in zip(law_a["points"], sizes):
        assert p["size"] == d and p["censored"] is None
        assert p["transferred"] == pytest.approx(k * d ** alpha, rel=0.08)
        assert p["share"] == pytest.approx(k * d ** alpha / (d + k * d ** alpha), rel=0.08)
    assert law_a["k"] == pytest.approx(k, rel=0.15) and law_a["alpha"] == pytest.approx(alpha, abs=0.05)
    assert law_a["k_ci"][0] <= k <= law_a["k_ci"][1] and law_a["alpha_ci"][0] <= alpha <= law_a["alpha_ci"][1]
    assert law_a["used"] == 300


def test_effective_data_off_the_data_axis_is_censored_where_scratch_cannot_tell():
    scratch = [(100, 0.5), (400, 0.7), (1600, 0.8)]
    # beyond scratch's largest size: a lower bound, D_T > 1600 - 400
    beyond = transfer.data_transferred(scratch, 400, 0.9)
    assert beyond["censored"] == ">" and beyond["transferred"] == 1200 and transfer.fmt_transferred(beyond) == "> +1,200"
    # scratch is there at its smallest size: an upper bound
    assert transfer.data_transferred(scratch, 100, 0.4)["censored"] == "<="
    # halfway in score between 100 and 400 samples is the geometric mean, 200, in log-data interpolation
    mid = transfer.data_transferred(scratch, 100, 0.6)
    assert mid["scratch_size"] == pytest.approx(200) and mid["transferred"] == pytest.approx(100) and mid["share"] == pytest.approx(0.5)
    # a noisy scratch curve that dips is read through its running best: more data is never worth less
    # (the dip at 200 counts as 0.5: 0.6 lies halfway from 200 to 400 samples)
    assert transfer.data_needed([(100, 0.5), (200, 0.45), (400, 0.7)], 0.6)[0] == pytest.approx(200 * 2 ** 0.5)
    # negative transfer: the fine-tuned arm on 400 samples scores what scratch does on 100
    assert transfer.data_transferred(scratch, 400, 0.5)["censored"] == "<="
    assert transfer.data_transferred(scratch, 1600, 0.7)["transferred"] == pytest.approx(400 - 1600)
    assert math.isnan(transfer.fit_power_law([100], [10])[0])


def test_a_reference_is_a_run_directory_read_when_the_report_is_made(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"primary": "accuracy", "splits": {"test": {"accuracy": 0.8}}}))
    assert transfer.summary.reference_score(str(run)) == (0.8, f"the run {run}")
    assert transfer.summary.reference_score(str(run / "metrics.json"))[0] == 0.8
    assert transfer.summary.reference_score(0.7) == (0.7, "a typed-in figure")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "metrics.json").write_text('{"primary": "accura')
    score, why = transfer.summary.reference_score(str(tmp_path / "half"))
    assert score is None and "is not a finished run" in why
    cells = [_cell("scratch", 1e-3, seed, 0.4, [[10, 0.3], [20, 0.4]]) for seed in range(2)]
    row = transfer.summarize(cells, {"lrs": [1e-3], "target_steps": 20, "reference": {"t": str(run)}})["t"]["scratch"]
    assert row["of_reference"] == pytest.approx(0.5) and row["reference_from"] == f"the run {run}"


def test_an_arm_is_flagged_at_the_edge_of_its_own_sweep():
    """A frozen arm sweeps lrs_by_adapt: its best rate is at the edge of that sweep, not of `lrs`."""
    cells = [_sized("scratch", 100, s, 0.5, lr=lr) for s in range(2) for lr in (1e-4, 3e-4, 1e-3)]
    # validation prefers 3e-3, test 1e-3: only a choice made on validation picks 3e-3
    cells += [{**_sized("m", 100, s, 0.5 + (lr < 2e-3) * 0.1, adapt="fpt", lr=lr), "val": 0.5 + (lr > 2e-3) * 0.1}
              for s in range(2) for lr in (1e-3, 3e-3)]
    exp = {"lrs": [1e-4, 3e-4, 1e-3], "lrs_by_adapt": {"fpt": [1e-3, 3e-3]}, "target_steps": 20}
    row = transfer.summarize(cells, exp)["t (n=100)"]["m/fpt"]
    assert row["best_lr"] == 3e-3 and row["lrs"] == [1e-3, 3e-3] and row["lr_at_edge"]
    assert row["mean"] == pytest.approx(0.5)  # the test score of the rate chosen on validation


def test_identical_seeds_are_not_distinguishable_and_nan_never_wins_a_sweep():
    """Three identical seeds at 0.98 against three at 1.00 have no spread: no p-value, not
    distinguishable. A learning rate whose runs score NaN on validation is never the best, even first."""
    cells = [_cell("scratch", 1e-3, s, 0.98, [[10, 0.98]]) for s in range(3)]
    cells += [_cell("a", 1e-3, s, 1.0, [[10, 1.0]]) for s in range(3)]
    nan = float("nan")
    cells += [{**_cell("b", 1e-4, s, nan, [[10, nan]]), "val": nan} for s in range(3)]
    cells += [_cell("b", 1e-3, s, 0.9 + s / 100, [[10, 0.9]]) for s in range(3)]
    s = transfer.summarize(cells, {"lrs": [1e-4, 1e-3], "target_steps": 10})["t"]
    assert math.isnan(s["a/full"]["gain_p"]) and not s["a/full"]["distinguishable"]
    assert s["a/full"]["gain"] == pytest.approx(0.02)
    assert s["b/full"]["best_lr"] == 1e-3 and s["b/full"]["mean"] == pytest.approx(0.91) and s["b/full"]["nan_runs"] == 3


def test_methods_are_ranked_with_intervals_and_orca_is_set_against_its_unaligned_twin(tmp_path):
    """Three seeds per arm; `m/orca` beats `m/full` by 0.1, `m/lora` is tied with `m/full`: the ranks,
    their resampled intervals, the parameters each trains, and ORCA's alignment gain with its distances."""
    def arm(method, seed, score, **adapted):
        cell = _sized("m", 100, seed, score, adapt=method)
        return {**cell, "adapted": {"method": method, "trainable": {"full": 1000, "lora": 50, "orca": 1000}[method],
                                    "parameters": 1000, "share": {"full": 1.0, "lora": 0.05, "orca": 1.0}[method], **adapted}}

    cells = [_sized("scratch", 100, s, 0.3 + 0.01 * s) for s in range(3)]
    cells += [arm("full", s, 0.5 + 0.01 * s) for s in range(3)]
    cells += [arm("lora", s, 0.505 + 0.01 * s) for s in range(3)]
    cells += [arm("orca", s, 0.6 + 0.01 * s, align={"before": 10.0 + s, "after": 2.0, "distance": "otdd"}) for s in range(3)]
    exp = {"lrs": [1e-3], "target_steps": 20, "adapt": ["full", "lora", "orca"]}
    summary = transfer.summarize(cells, exp)
    rows = summary["t (n=100)"]
    assert [rows[a]["rank"] for a in ("m/orca", "m/lora", "m/full", "scratch")] == [1, 2, 3, 4]
    assert rows["m/orca"]["rank_ci95"] == [1, 1] and rows["scratch"]["rank_ci95"] == [4, 4]
    assert rows["m/lora"]["rank_ci95"] == [2, 3] and rows["m/full"]["rank_ci95"] == [2, 3]  # tied: the seeds decide
    orca = rows["m/orca"]
    assert orca["align_vs"] == "m/full" and orca["align_gain"] == pytest.approx(0.1)
    assert orca["align_gain_ci95"] > 0 and orca["align_distinguishable"]
    assert orca["align_before"] == pytest.approx(11.0) and orca["align_after"] == pytest.approx(2.0)
    assert "align_gain" not in rows["m/lora"] and rows["m/lora"]["trainable"] == 50
    transfer.write_report({**exp, "profile": "t", "preset": "tiny", "seeds": [0, 1, 2], "source_steps": 1, "sources": ["m"], "targets": ["t"]}, cells, summary, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "| 1 | 1-1 | m/orca | 1,000 (100.00%) | 0.6100 ± " in report
    assert "| 2 | 2-3 | m/lora | 50 (5.00%) | 0.5150 ± " in report
    line = next(l for l in report.splitlines() if l.startswith("| t (n=100) | m/orca | m/full |"))
    assert "+0.1000 ±" in line and "✓" in line and "| 11.0000 | 2.0000 |" in line
