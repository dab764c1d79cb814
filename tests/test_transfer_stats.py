"""The transfer matrix's measures and statistics, on numbers worked out by hand or by scipy."""
import math

import pytest
from scipy import stats as sps

from suite import transfer


def test_student_and_welch_intervals_come_from_scipy():
    mean, ci = transfer.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and ci == pytest.approx(sps.t.ppf(0.975, 2) / 3 ** 0.5)
    # beyond 30 degrees of freedom too (the old hand-written table said 1.96 there)
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
    # no spread: a difference is exact, no difference is none
    assert transfer.welch_test([1.0, 1.0], [0.0, 0.0])["p"] == 0.0
    assert transfer.welch_test([1.0, 1.0], [1.0, 1.0])["p"] == 1.0
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
    arm = "scratch" if arm_source == "scratch" else f"{arm_source}/none"
    return {"target": "t", "source": arm_source, "freeze": "none", "lr": lr, "seed": seed, "arch": arch, "arm": arm,
            "metric": "accuracy", "higher_is_better": True, "val": curve[-1][1], "test": test, "raw_test": test,
            "curve": curve}


def test_summary_picks_each_arms_rate_on_validation_and_corrects_across_the_matrix():
    cells = []
    for seed in range(3):
        e = 0.01 * seed
        cells += [_cell("scratch", 1e-3, seed, 0.50 + e, [[50, 0.2], [100, 0.4], [150, 0.5 + e]]),
                  _cell("scratch", 3e-3, seed, 0.40 + e, [[50, 0.3], [100, 0.35], [150, 0.4]]),
                  _cell("scratch", 1e-2, seed, 0.30 + e, [[50, 0.1], [100, 0.2], [150, 0.3]]),
                  _cell("a", 1e-3, seed, 0.60 + e, [[50, 0.3], [100, 0.5], [150, 0.6 + e]]),
                  _cell("a", 3e-3, seed, 0.70 + e, [[50, 0.4], [100, 0.6], [150, 0.7 + e]]),
                  _cell("a", 1e-2, seed, 0.65 + e, [[50, 0.4], [100, 0.6], [150, 0.65]]),
                  _cell("b", 1e-3, seed, 0.50 + 2 * e, [[50, 0.2], [100, 0.4], [150, 0.5 + e]])]
    s = transfer.summarize(cells, {"lrs": [1e-3, 3e-3, 1e-2], "target_steps": 150, "reference": {"t": 0.6}})["t"]
    # scratch: best validation at 1e-3, the low edge of the sweep; a: 3e-3, inside it
    assert s["scratch"]["best_lr"] == 1e-3 and s["scratch"]["lr_at_edge"]
    assert s["a/none"]["best_lr"] == 3e-3 and not s["a/none"]["lr_at_edge"]
    assert s["b/none"]["lr_at_edge"]  # swept at one rate only
    a = s["a/none"]
    assert a["gain"] == pytest.approx(0.2)
    assert a["gain_p"] == pytest.approx(sps.ttest_ind([0.7, 0.71, 0.72], [0.5, 0.51, 0.52], equal_var=False).pvalue)
    # Holm over the two gains in the matrix (a and b)
    p_a, p_b = a["gain_p"], s["b/none"]["gain_p"]
    assert p_a < p_b and a["gain_p_holm"] == pytest.approx(2 * p_a)
    assert s["b/none"]["gain_p_holm"] == pytest.approx(min(1.0, max(2 * p_a, p_b)))
    assert a["distinguishable"] and not s["b/none"]["distinguishable"]
    # a reaches 0.4 at step 50; the scratch mean curve gets there at step 100: 50 steps of data
    assert a["effective_data"]["steps"] == pytest.approx(50) and a["effective_data"]["fraction"] == pytest.approx(1 / 3)
    assert a["auc_mean"] == pytest.approx(transfer.auc(transfer.mean_curve([c["curve"] for c in cells
                                                                              if c["arm"] == "a/none" and c["lr"] == 3e-3])))
    assert s["scratch"]["of_reference"] == pytest.approx(0.51 / 0.6)
    assert s["scratch"]["val_best_step"] == 150 and s["scratch"]["test_best"] is None


def test_noise_units_colour_is_unit_free():
    assert transfer.noise_units(0.5, 1.0) == 0.5 and transfer.noise_units(-30.0, 1.0) == -2.0
    assert transfer.noise_units(0.1, float("nan")) == 0.0
