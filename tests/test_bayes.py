"""tpsynth.bayes against independent quadrature (R integrate()) and bayesmeta's published examples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tpsynth import bayes
from tpsynth.effect_sizes import log_odds_ratio

REF = json.loads((Path(__file__).parent / "reference" / "bayes.json").read_text(encoding="utf-8"))
KEYS = ["estimate", "mean", "sd", "ci_low", "ci_high", "hdi_low", "hdi_high", "pi_low", "pi_high", "tau_median",
        "tau_ci_low", "tau_ci_high"]  # fmt: skip


def _close(a: float, b: float, rtol: float, scale: float) -> bool:
    """Relative agreement, with ``scale`` as the floor for values near zero."""
    return abs(a - b) <= rtol * max(abs(b), scale)


def _case_id(c):
    return f"{c['name']}-{c['family']}"


@pytest.mark.parametrize("case", REF["cases"], ids=_case_id)
def test_matches_r_integrate(case):
    """Every reported number agrees with R's adaptive quadrature to 1e-6 (relative)."""
    mu = case["mu_prior"]
    prior = bayes.TauPrior(case["family"], tuple(np.atleast_1d(case["params"]).tolist()))
    post = bayes.posterior(case["yi"], case["vi"], prior, bayes.MuPrior(*mu) if mu else None)
    res = bayes.summarise(post, benefit="lower", mid=case["mid"])
    ref = case["result"]
    scale = (ref["ci_high"] - ref["ci_low"]) / 4
    infinite_sd = case["mu_prior"] is None and len(case["yi"]) == 2 and case["family"] in ("half_cauchy", "log_t_tau2")
    assert (res.sd is None) == infinite_sd  # R's figure is then only a truncated integral
    for key in KEYS:
        if key == "sd" and infinite_sd:
            continue
        assert _close(getattr(res, key), ref[key], 1e-6, scale if not key.startswith("tau") else 1e-300), (
            key, getattr(res, key), ref[key])
    assert res.prob_benefit == pytest.approx(ref["p_below_0"], rel=1e-6, abs=1e-9)
    assert res.prob_important_benefit == pytest.approx(ref["p_below_minus_mid"], rel=1e-6, abs=1e-9)
    up = bayes.summarise(post, benefit="higher", mid=case["mid"])  # outcomes where higher is better
    assert up.prob_benefit == pytest.approx(1 - ref["p_below_0"], rel=1e-6, abs=1e-9)
    assert up.prob_important_benefit == pytest.approx(1 - ref["p_below_mid"], rel=1e-6, abs=1e-9)


def test_reference_records_versions():
    assert REF["r_version"].startswith("R version") and REF["metafor_version"]
    ks = {len(c["yi"]) for c in REF["cases"]}
    assert {2, 3, 5} <= ks
    assert {c["family"] for c in REF["cases"]} == set(bayes.PRIOR_FAMILIES)


@pytest.mark.parametrize("case", [c for c in REF["cases"] if c["name"] in ("bcg_k2", "two_agreeing", "normand1999_k3")],
                         ids=_case_id)
def test_quadrature_converged(case):
    """A grid 5x finer, with a lower cut 100x lower and a farther upper cut, changes no reported
    number by more than 1e-9 relative (the numerical error is far below the 1e-6 required)."""
    prior = bayes.TauPrior(case["family"], tuple(np.atleast_1d(case["params"]).tolist()))
    a = bayes.summarise(bayes.posterior(case["yi"], case["vi"], prior), benefit="lower", mid=case["mid"])
    b = bayes.summarise(bayes.posterior(case["yi"], case["vi"], prior, panel_width=0.05, tau_lo_factor=1e-9,
                                        tail=60.0), benefit="lower", mid=case["mid"])
    scale = (a.ci_high - a.ci_low) / 4
    for key in [*KEYS, "prob_benefit", "prob_important_benefit"]:
        x, y = getattr(a, key), getattr(b, key)
        if x is None:
            assert y is None
            continue
        assert _close(x, y, 1e-9, 1e-12 if key.startswith(("tau", "prob")) else scale), (key, x, y)
    for s, t in zip(a.studies, b.studies, strict=True):
        for key in ("median", "mean", "sd", "ci_low", "ci_high"):
            assert _close(getattr(s, key), getattr(t, key), 1e-9, scale), key


# --- bayesmeta's published worked example ------------------------------------------------------
# Röver C. Bayesian random-effects meta-analysis using the bayesmeta R package. J Stat Softw
# 2020;93(6). Section 3 (Crins et al. 2014 data, log odds ratios of acute rejection, escalc(measure
# = "OR"), mu ~ N(0, 4²), tau ~ half-normal(0.5)). bayesmeta's mu figures come from its DIRECT
# approximation (accuracy about 1e-3); its tau figures are accurate to about 1e-6.
CRINS = {  # Heffron, Gibelli, Schuller, Ganschow, Spada, Gras (order of the paper's forest plot)
    "exp_events": [14, 16, 3, 9, 4, 0], "exp_total": [61, 28, 18, 54, 36, 50],
    "cont_events": [15, 19, 8, 29, 11, 3], "cont_total": [20, 28, 12, 54, 36, 34],
}  # fmt: skip


@pytest.fixture(scope="module")
def crins():
    yi, vi, *_ = log_odds_ratio(*(np.array(CRINS[k], dtype=float) for k in ("exp_events", "exp_total",
                                                                          "cont_events", "cont_total")))
    return yi, vi


def test_bayesmeta_crins_ma01(crins):
    yi, vi = crins
    post = bayes.posterior(yi, vi, bayes.TauPrior("half_normal", (0.5,)), bayes.MuPrior(0, 4))
    # p. 22, "marginal posterior summary" of ma01 (tau column) and p. 23 ma01$summary
    assert post.tau_quantile(0.5) == pytest.approx(0.3445022, abs=2e-7)
    tau_mean, tau_sd = post.tau_moments()
    assert tau_mean == pytest.approx(0.3810562, abs=1e-6)
    assert tau_sd == pytest.approx(0.2593672, abs=1e-6)
    # p. 25: 1 - ma01$pposterior(tau = 1) = 0.02097488; ma01$qposterior(tau.p = 0.99) = 1.109186
    assert 1 - post.tau_cdf(1.0) == pytest.approx(0.02097488, abs=1e-7)
    assert post.tau_quantile(0.99) == pytest.approx(1.109186, abs=1e-6)
    # p. 22: mu median -1.5734823, mean -1.5764366, sd 0.3295298, 95% shortest [-2.2312306, -0.9264079]
    assert post.quantile(0.5) == pytest.approx(-1.5734823, abs=1e-3)
    mean, sd = post.moments()
    assert mean == pytest.approx(-1.5764366, abs=1e-3)
    assert sd == pytest.approx(0.3295298, abs=1e-3)
    lo, hi = post.shortest()
    assert lo == pytest.approx(-2.2312306, abs=1e-3)
    assert hi == pytest.approx(-0.9264079, abs=1e-3)
    # p. 23 ma01$summary, theta (predictive) column: median -1.5701653, mean -1.5764365, sd 0.5671855,
    # shortest 95% [-2.7661319, -0.4072970]. bayesmeta approximates the predictive distribution more
    # coarsely than mu's (its sd differs from the exact value by 6.5e-4, its lower bound by 1.7e-3).
    assert post.quantile(0.5, "pred") == pytest.approx(-1.5701653, abs=1e-3)
    pmean, psd = post.moments("pred")
    assert pmean == pytest.approx(-1.5764365, abs=1e-3)
    assert psd == pytest.approx(0.5671855, abs=1e-3)
    plo, phi = post.shortest(0.95, "pred")
    assert plo == pytest.approx(-2.7661319, abs=2e-3)
    assert phi == pytest.approx(-0.4072970, abs=2e-3)
    # p. 26: shrinkage estimate of Heffron (2003): median -1.7411356, mean -1.7778965, sd 0.4229425,
    # 95% shortest [-2.6561049, -0.9920023]
    assert post.quantile(0.5, "theta", 0) == pytest.approx(-1.7411356, abs=1e-3)
    tmean, tsd = post.moments("theta", 0)
    assert tmean == pytest.approx(-1.7778965, abs=1e-3)
    assert tsd == pytest.approx(0.4229425, abs=1e-3)
    tlo, thi = post.shortest(0.95, "theta", 0)
    assert tlo == pytest.approx(-2.6561049, abs=1e-3)
    assert thi == pytest.approx(-0.9920023, abs=1e-3)


def test_bayesmeta_crins_ma01_shrinkage_in_summary(crins):
    """The summary's per-study rows (computed for all studies at once) give bayesmeta's published shrinkage
    estimate of Heffron (2003), p. 26: median -1.7411356, mean -1.7778965, sd 0.4229425."""
    yi, vi = crins
    res = bayes.summarise(bayes.posterior(yi, vi, bayes.TauPrior("half_normal", (0.5,)), bayes.MuPrior(0, 4)))
    heffron = res.studies[0]
    assert heffron.median == pytest.approx(-1.7411356, abs=1e-3)
    assert heffron.mean == pytest.approx(-1.7778965, abs=1e-3)
    assert heffron.sd == pytest.approx(0.4229425, abs=1e-3)


def _study_cases():
    """(yi, vi, tau prior, mu prior) of the R reference cases, plus larger and awkward ones."""
    for c in REF["cases"]:
        mu = c["mu_prior"]
        prior = bayes.TauPrior(c["family"], tuple(np.atleast_1d(c["params"]).tolist()))
        yield _case_id(c), c["yi"], c["vi"], prior, bayes.MuPrior(*mu) if mu else None
    rng = np.random.default_rng(14)
    y, v = rng.normal(-0.5, 0.6, 400), rng.uniform(0.01, 0.5, 400)
    yield "k400", y, v, bayes.parse_tau_prior("half_cauchy(1)"), None
    # two clusters far apart with tiny variances: each study's posterior is a far-from-normal mixture
    y = np.r_[np.full(3, -3.0), np.full(3, 3.0)] + rng.normal(0, 0.01, 6)
    yield "bimodal", y, np.full(6, 1e-4), bayes.parse_tau_prior("uniform(20)"), bayes.MuPrior(0.0, 1.0)
    yield "one study, normal mu prior", [0.4], [0.09], bayes.parse_tau_prior("half_normal(0.5)"), bayes.MuPrior(0.0, 2.0)


@pytest.mark.parametrize("case", list(_study_cases()), ids=lambda c: c[0])
def test_study_summaries_equal_one_study_at_a_time(case, monkeypatch):
    """The vectorised per-study summaries equal each study's own moments and brentq quantiles of its
    mixture posterior (Posterior.moments / Posterior.quantile, which summarise used per study) to 1e-9,
    also when the studies are split over many blocks."""
    _, yi, vi, tau_prior, mu_prior = case
    post = bayes.posterior(yi, vi, tau_prior, mu_prior)
    probs = (0.5, 0.025, 0.975, 0.1)
    for block in (bayes.STUDY_BLOCK, 1):
        monkeypatch.setattr(bayes, "STUDY_BLOCK", block)
        mean, sd, quant = bayes.study_summaries(post, probs)
        for i in range(len(post.y)):
            m, s = post.moments("theta", i)
            assert abs(mean[i] - m) <= 1e-9 * max(1.0, abs(m)), (i, mean[i], m)
            assert abs(sd[i] - s) <= 1e-9 * max(1.0, s), (i, sd[i], s)
            for j, q in enumerate(probs):
                x = post.quantile(q, "theta", i)
                assert abs(quant[i, j] - x) <= 1e-9 * max(1.0, abs(x)), (i, q, quant[i, j], x)


def test_bayesmeta_crins_ma05_two_randomised(crins):
    """p. 33: the two randomised studies (Heffron, Spada): ma05$pposterior(mu = 0) = 0.9974968;
    forest plot (Figure 6): mean -1.78 [-2.86, -0.69], prediction -1.78 [-3.25, -0.28]."""
    yi, vi = crins
    post = bayes.posterior(yi[[0, 4]], vi[[0, 4]], bayes.TauPrior("half_normal", (0.5,)), bayes.MuPrior(0, 4))
    assert post.cdf(0.0) == pytest.approx(0.9974968, abs=1e-3)
    assert round(post.quantile(0.5), 2) == -1.78
    assert [round(x, 2) for x in post.shortest()] == [-2.86, -0.69]
    assert [round(x, 2) for x in post.shortest(0.95, "pred")] == [-3.25, -0.28]


def test_turner_prior_quantiles():
    """Röver 2020 p. 31: TurnerEtAlPrior("surgical", "pharmacological", "placebo / control")$qprior(
    c(0.025, 0.5, 0.975)) = 0.06233896 0.34300852 1.88734045 (log-normal, tau² ~ LN(-2.14, 1.74²),
    Turner 2015 Table IV)."""
    p = bayes.TauPrior("lognormal_tau2", (-2.14, 1.74))
    for q, ref in ((0.025, 0.06233896), (0.5, 0.34300852), (0.975, 1.88734045)):
        assert p.quantile(q) == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize("text", ["half_normal(0.5)", "half_cauchy(1)", "lognormal_tau2(-2.05, 1.71)",
                                  "log_t_tau2(-3.02, 2.27, 5)", "uniform(4)"])
def test_prior_round_trip_and_normalised(text):
    """The config syntax reads back to itself, and each prior's density of log(tau) integrates to 1
    with a CDF that matches it."""
    from scipy.integrate import quad

    p = bayes.parse_tau_prior(text)
    assert p.label == text.replace(", ", ", ")
    total = quad(lambda u: math.exp(p.logpdf_u(np.array([u]))[0]), -60, math.log(p.quantile(0.999999)) + 5,
                 limit=500, epsabs=0, epsrel=1e-10)[0]
    assert total == pytest.approx(1.0, abs=2e-6)
    t = p.quantile(0.3)
    part = quad(lambda u: math.exp(p.logpdf_u(np.array([u]))[0]), -80, math.log(t), limit=500, epsabs=0, epsrel=1e-11)[0]
    assert part == pytest.approx(0.3, abs=1e-6)


@pytest.mark.parametrize("bad", ["half_normal(-1)", "half_normal", "gamma(1, 2)", "uniform(a)", "log_t_tau2(1, 2)"])
def test_bad_priors_are_rejected(bad):
    with pytest.raises(bayes.PriorError):
        bayes.parse_tau_prior(bad)


def test_mu_prior_parsing():
    assert bayes.parse_mu_prior("flat").label == "flat"
    assert bayes.parse_mu_prior("normal(0, 4)").label == "normal(0, 4)"
    with pytest.raises(bayes.PriorError):
        bayes.parse_mu_prior("normal(0, -1)")


def test_auto_priors():
    """`auto` picks Turner 2015 (ratios), Rhodes 2015 (SMD) or Rhodes scaled (MD) and says which."""
    p = bayes.auto_tau_prior("OR", "pain_responder", ["manual"], ["sham"])
    assert p.label == "lognormal_tau2(-2.05, 1.71)" and "pain" in p.source
    p = bayes.auto_tau_prior("RR", "global_improvement", ["injection"], ["sham"])
    assert p.label == "lognormal_tau2(-2.7, 1.52)" and "subjective" in p.source
    # a side mixing categories: the most heterogeneous comparison type (largest median tau²) wins
    p = bayes.auto_tau_prior("RR", "pain_responder", ["injection"], ["other_active", "control"])
    assert p.params == (-0.80, 1.24)
    p = bayes.auto_tau_prior("SMD", "pain", ["manual"], ["manual"])
    assert p.label == "log_t_tau2(-3.02, 2.27, 5)"
    p = bayes.auto_tau_prior("SMD", "pain", ["injection"], ["sham"])
    assert p.label == "log_t_tau2(-3.16, 2.5, 5)"
    p = bayes.auto_tau_prior("MD", "pain", ["needling"], ["control"], comparator_sd=2.0)
    assert p.params == (round(-3.02 + 2 * math.log(2.0), 4), 2.27, 5)
    assert "median comparator SD 2" in p.source
    with pytest.raises(bayes.PriorError):
        bayes.auto_tau_prior("MD", "pain", ["needling"], ["control"], comparator_sd=None)


def test_deterministic():
    y, v = [0.27, 0.26, -0.1], [0.067, 0.062, 0.04]
    a = bayes.bayes_meta(y, v, "log_t_tau2(-3.02, 2.27, 5)", benefit="higher", mid=0.2)
    b = bayes.bayes_meta(y, v, "log_t_tau2(-3.02, 2.27, 5)", benefit="higher", mid=0.2)
    assert repr(a.to_dict()) == repr(b.to_dict())


def test_benefit_direction():
    """P(benefit) is P(mu > 0) when higher favours the intervention, P(mu < 0) otherwise."""
    y, v = [0.5, 0.3], [0.04, 0.05]
    hi = bayes.bayes_meta(y, v, "half_normal(0.5)", benefit="higher", mid=0.2)
    lo = bayes.bayes_meta(y, v, "half_normal(0.5)", benefit="lower", mid=0.2)
    assert hi.prob_benefit == pytest.approx(1 - lo.prob_benefit, abs=1e-12)
    assert hi.prob_benefit > 0.9 and hi.prob_important_benefit < hi.prob_benefit
    assert bayes.bayes_meta(y, v, "half_normal(0.5)").prob_benefit is None


def test_bad_input():
    with pytest.raises(ValueError):
        bayes.posterior([0.1], [0.01], bayes.TauPrior("half_normal", (0.5,)))
    with pytest.raises(ValueError):
        bayes.posterior([0.1, 0.2], [0.01, 0.0], bayes.TauPrior("half_normal", (0.5,)))


def test_posterior_in_node_blocks_equals_one_block(monkeypatch):
    """_cond takes the tau nodes in blocks when studies x nodes are many (memory bounded at k = 100,000):
    every reported number, per-study summaries included, agrees with the one-block computation to 1e-9."""
    rng = np.random.default_rng(7)
    y, v = rng.normal(-0.3, 0.5, 300), rng.uniform(0.02, 0.4, 300)
    prior = bayes.parse_tau_prior("half_normal(0.5)")
    one = bayes.summarise(bayes.posterior(y, v, prior), benefit="lower", mid=0.2)
    monkeypatch.setattr(bayes, "COND_BLOCK", 1000)  # 3 nodes per block
    blocked = bayes.summarise(bayes.posterior(y, v, prior), benefit="lower", mid=0.2)
    scale = (one.ci_high - one.ci_low) / 4
    for key in [*KEYS, "prob_benefit", "prob_important_benefit"]:
        assert _close(getattr(blocked, key), getattr(one, key), 1e-9, scale), key
    for s, t in zip(blocked.studies, one.studies, strict=True):
        for key in ("median", "mean", "sd", "ci_low", "ci_high"):
            assert _close(getattr(s, key), getattr(t, key), 1e-9, scale), key
