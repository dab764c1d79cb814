"""The Elo fit and `suite elo`'s JSON summary after only wins, only losses and a mixed record: a
one-sided interval gives its bound and side (``elo`` null), never the edge of the search range;
a mixed record gives the logistic Elo of its score. The ladder's games are stubbed (no model, no
games played); `suite elo` still asks Stockfish for its UCI_Elo range."""
from __future__ import annotations

import json
import math

import pytest

from suite import cli
from suite.plugins.chess import elo
from suite.plugins.chess.elo import HIGH, LOW, fit_elo
from suite.plugins.chess.generate import find_stockfish

needs_stockfish = pytest.mark.skipif(find_stockfish(None) is None, reason="Stockfish is not installed (apt-get install stockfish)")
CHI2_95 = 1.959963984540054 ** 2  # the chi-squared 95% point with one degree of freedom


def logistic_elo(opponent: float, score: float) -> float:
    """The rating whose expected score against ``opponent`` is ``score``."""
    return opponent + 400 * math.log10(score / (1 - score))


def one_sided_bound(opponent: float, n: int) -> float:
    """The profile-likelihood bound after n wins against one opponent: the rating whose chance of
    winning all n games is exp(-CHI2_95 / 2), i.e. -log-likelihood CHI2_95 / 2 above the maximum (0)."""
    return logistic_elo(opponent, math.exp(-CHI2_95 / (2 * n)))


def record(wins: int, draws: int, losses: int, opponent: str = "sf1500") -> list[tuple[str, str, float]]:
    return [("m", opponent, 1.0)] * wins + [("m", opponent, 0.5)] * draws + [("m", opponent, 0.0)] * losses


def test_all_wins_give_a_lower_bound_and_no_rating():
    fit = fit_elo(record(10, 0, 0), {"sf1500": 1500.0}, "m")
    assert fit["elo"] is None and fit["bound"] == "lower"
    assert fit["ci95"][1] is None and fit["elo_bound"] == fit["ci95"][0]
    assert fit["elo_bound"] == pytest.approx(one_sided_bound(1500.0, 10), abs=0.5)


def test_all_losses_give_an_upper_bound_and_no_rating():
    fit = fit_elo(record(0, 0, 10), {"sf1500": 1500.0}, "m")
    assert fit["elo"] is None and fit["bound"] == "upper"
    assert fit["ci95"][0] is None and fit["elo_bound"] == fit["ci95"][1]
    assert fit["elo_bound"] == pytest.approx(3000.0 - one_sided_bound(1500.0, 10), abs=0.5)  # the mirror image


def test_a_mixed_record_gives_the_logistic_rating_of_its_score():
    fit = fit_elo(record(15, 3, 6), {"sf1500": 1500.0}, "m")  # 16.5 / 24 = 68.75%
    assert fit["elo"] == pytest.approx(logistic_elo(1500.0, 16.5 / 24), abs=0.5)
    assert fit["bound"] is None and fit["elo_bound"] is None
    lo, hi = fit["ci95"]
    assert lo < fit["elo"] < hi


# -- the command's JSON summary --------------------------------------------------------------------
def ladder(monkeypatch, tmp_path, capsys, scores: list[float]) -> tuple[dict, str]:
    """`suite elo` at the one level 1500 with the model's scores stubbed, game by game: (JSON, output)."""
    monkeypatch.setattr(elo, "load_player", lambda run_dir: None)
    monkeypatch.setattr(elo, "play_job", lambda job: {**job, "pgn": '[Result "*"]\n\n*', "score": scores[job["index"]]})
    pgn = tmp_path / "elo.pgn"
    code = cli.main(["elo", str(tmp_path), "--levels", "1500", "--games", str(len(scores)), "--workers", "1",
                     "--no-progress", "--pgn", str(pgn)])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(pgn.with_suffix(".json").read_text()), out


def no_search_edge(summary: dict) -> bool:
    values = [summary["elo"], summary["elo_bound"], *summary["elo_ci95"]]
    return all(v is None or LOW + 1 < v < HIGH - 1 for v in values)


@needs_stockfish
def test_the_summary_stores_the_bound_and_its_side_after_only_wins_or_only_losses(monkeypatch, tmp_path, capsys):
    won, out = ladder(monkeypatch, tmp_path, capsys, [1.0] * 8)
    assert won["elo"] is None and won["bound"] == "lower" and won["elo_ci95"] == [won["elo_bound"], None]
    assert won["elo_bound"] == pytest.approx(one_sided_bound(1500.0, 8), abs=0.5) and no_search_edge(won)
    assert f"Elo above {won['elo_bound']:.0f} (95% lower bound" in out
    lost, out = ladder(monkeypatch, tmp_path, capsys, [0.0] * 8)
    assert lost["elo"] is None and lost["bound"] == "upper" and lost["elo_ci95"] == [None, lost["elo_bound"]]
    assert lost["elo_bound"] == pytest.approx(3000.0 - one_sided_bound(1500.0, 8), abs=0.5) and no_search_edge(lost)
    assert f"Elo below {lost['elo_bound']:.0f} (95% upper bound" in out


@needs_stockfish
def test_the_summary_of_a_mixed_record_stores_the_rating_and_no_bound(monkeypatch, tmp_path, capsys):
    summary, out = ladder(monkeypatch, tmp_path, capsys, [1.0, 1.0, 0.5, 0.0])  # 62.5%
    assert summary["elo"] == pytest.approx(logistic_elo(1500.0, 0.625), abs=0.5)
    assert summary["bound"] is None and summary["elo_bound"] is None
    lo, hi = summary["elo_ci95"]
    assert lo < summary["elo"] < hi and no_search_edge(summary)
    assert summary["levels"][0]["wins"] == 2 and summary["levels"][0]["score"] == 0.625
    assert f"Elo {summary['elo']:.0f} (95% CI {lo:.0f}-{hi:.0f})" in out
