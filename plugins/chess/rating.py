"""The Elo fit: maximum-likelihood ratings with a 95% profile-likelihood interval, from game scores.

The Elo model: a player rated ``diff`` above the opponent expects to score
1 / (1 + 10 ** (-diff / 400)), a draw counting half. Players in ``anchors`` (Stockfish's
``UCI_Elo`` levels) keep their ratings; the others are fitted with scipy. The 95% interval is the
profile-likelihood interval (the ratings whose likelihood-ratio statistic stays below the
chi-squared 95% point), which stays honest when the subject wins or loses every game: the interval
is then open on one side.
"""
from __future__ import annotations

import suite

LOW, HIGH = -1000.0, 4000.0  # the search range of every fitted rating


def expected(diff):
    """Expected score of a player rated ``diff`` above the opponent."""
    import numpy as np

    return 1.0 / (1.0 + np.power(10.0, -np.asarray(diff, dtype=float) / 400.0))


def fit_elo(games: list[tuple[str, str, float]], anchors: dict[str, float], subject: str = "model") -> dict:
    """Maximum-likelihood ratings of the players not in ``anchors``, from (a, b, score of a) games.

    Returns ``subject``'s rating (``elo``) and its 95% profile-likelihood interval (``ci95``; a
    bound is None where the interval reaches the edge of the search range, e.g. after all wins),
    and every fitted rating (``ratings``). Where the interval is open on one side the maximum sits
    at the edge of the search range and means nothing: ``elo`` is then None, and ``elo_bound`` is the
    interval's one bound, ``bound`` its side ("lower" after only wins, "upper" after only losses;
    both None where the interval is closed, or open on both sides)."""
    import numpy as np
    from scipy import optimize, stats

    players = sorted({p for a, b, _ in games for p in (a, b)} - set(anchors))
    if subject not in players:
        raise suite.SuiteError(f"no games of {subject!r} to rate")
    index = {p: i for i, p in enumerate(players)}
    a = [g[0] for g in games]
    b = [g[1] for g in games]
    s = np.array([g[2] for g in games], dtype=float)

    def ratings(x, name):
        return x[index[name]] if name in index else anchors[name]

    def nll(x):
        diff = np.array([ratings(x, p) - ratings(x, q) for p, q in zip(a, b)])
        e = np.clip(expected(diff), 1e-12, 1 - 1e-12)
        return -float(np.sum(s * np.log(e) + (1 - s) * np.log(1 - e)))

    others = [p for p in players if p != subject]
    start = float(np.mean(list(anchors.values()))) if anchors else 1500.0

    def profile(r: float) -> tuple[float, np.ndarray]:
        """The smallest negative log-likelihood with ``subject`` fixed at ``r``."""
        if not others:
            x = np.array([r])
            return nll(x), x

        def f(y):
            x = np.empty(len(players))
            x[index[subject]] = r
            for p, v in zip(others, y):
                x[index[p]] = v
            return nll(x)

        res = optimize.minimize(f, np.full(len(others), start), method="L-BFGS-B", bounds=[(LOW, HIGH)] * len(others))
        return float(res.fun), res.x

    best = optimize.minimize_scalar(lambda r: profile(r)[0], bounds=(LOW, HIGH), method="bounded", options={"xatol": 0.05})
    r_hat, nll_min = float(best.x), float(best.fun)
    limit = stats.chi2.ppf(0.95, 1) / 2.0  # the likelihood-ratio statistic 2 * (nll - nll_min) <= chi2(1) 95%
    gap = lambda r: profile(r)[0] - nll_min - limit  # noqa: E731
    lo = optimize.brentq(gap, LOW, r_hat) if gap(LOW) > 0 else None
    hi = optimize.brentq(gap, r_hat, HIGH) if gap(HIGH) > 0 else None
    x = profile(r_hat)[1]
    if not others:
        fitted = {subject: r_hat}
    else:
        fitted = {subject: r_hat, **{p: float(v) for p, v in zip(others, x)}}
    # An interval open on one side leaves the maximum at the edge of the search range: only the bound counts.
    bound = "lower" if hi is None and lo is not None else "upper" if lo is None and hi is not None else None
    elo_bound = lo if bound == "lower" else hi if bound == "upper" else None
    return {"elo": r_hat if lo is not None and hi is not None else None, "ci95": [lo, hi], "elo_bound": elo_bound,
            "bound": bound, "ratings": fitted, "games": len(games)}
