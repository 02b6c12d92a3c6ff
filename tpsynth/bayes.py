"""Bayesian normal-normal random-effects meta-analysis by deterministic numerical integration.

The model (Röver 2020, section 2) is ``y_i ~ N(theta_i, v_i)``, ``theta_i ~ N(mu, tau^2)``, i.e.
``y_i ~ N(mu, v_i + tau^2)``, with a prior on the heterogeneity ``tau`` and a flat or normal prior on
the overall effect ``mu``. Conditional on ``tau`` the posterior of ``mu`` is normal with closed-form
moments, so every posterior quantity is a one-dimensional integral over ``tau`` of closed-form
terms (as in R's bayesmeta, which approximates that integral with its DIRECT mixture; here the
integral is computed by quadrature).

Numerics
--------
The integral over ``tau`` is taken in ``u = log tau`` with composite Gauss-Legendre rules. A prior
whose density of ``tau`` is unbounded at 0 (the log-t prior on ``tau^2``) has a bounded density in
``u``; its slowly decaying tail towards ``tau -> 0`` is handled exactly: below ``tau_lo = 1e-7 *
min(sqrt(v_i))`` the likelihood equals its value at ``tau = 0`` to within a relative ``O(tau_lo^2 /
min v_i)``, so that part contributes ``prior_cdf(tau_lo)`` times the ``tau = 0`` terms. The upper
limit is where ``L(tau) * P(prior tau > upper)`` falls below ``e^-40`` times the integrand's peak.
Quantiles are found by root finding on the quadrature CDF. No random numbers: the same input
gives the same output bit for bit.

References
----------
Röver C. Bayesian random-effects meta-analysis using the bayesmeta R package. J Stat Softw
2020;93(6):1-51. doi:10.18637/jss.v093.i06
Röver C, Bender R, Dias S, et al. On weakly informative prior distributions for the heterogeneity
parameter in Bayesian random-effects meta-analysis. Res Synth Methods 2021;12:448-74.
Friede T, Röver C, Wandel S, Neuenschwander B. Meta-analysis of few small studies in orphan
diseases. Res Synth Methods 2017;8:79-91; Biom J 2017;59:658-71.
Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT. Predictive distributions for between-study
heterogeneity and simple methods for their application in Bayesian meta-analysis. Stat Med
2015;34:984-98 (Table IV).
Rhodes KM, Turner RM, Higgins JPT. Predictive distributions were developed for the extent of
heterogeneity in meta-analyses of continuous outcome data. J Clin Epidemiol 2015;68:52-60 (Table 3).
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass, field

import numpy as np

from .results import BayesResult, BayesStudy


def _lazy(module: str, name: str):
    """``module.name``, imported on first call: the Snakefile checks the priors of the config at parse time
    (:func:`tpsynth.config.validate_config`), which must not pay ~0.5 s for importing scipy."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = name
    return call


brentq = _lazy("scipy.optimize", "brentq")
gammaln, log_ndtr, ndtr, ndtri, stdtr = (_lazy("scipy.special", n) for n in ("gammaln", "log_ndtr", "ndtr", "ndtri", "stdtr"))

# ---------------------------------------------------------------------------------------------
# priors
# ---------------------------------------------------------------------------------------------

PRIOR_FAMILIES = {  # family -> parameter names, in config order
    "half_normal": ("scale",),
    "half_cauchy": ("scale",),
    "lognormal_tau2": ("mean", "sd"),
    "log_t_tau2": ("location", "scale", "df"),
    "uniform": ("upper",),
}
_LOG2PI = math.log(2 * math.pi)


class PriorError(ValueError):
    """A prior written in the config cannot be parsed or has invalid parameters."""


def _num(x: float) -> str:
    """Shortest text that reads back as the same float (``0.5``, ``-3.02``, ``5``)."""
    x = float(x)
    return repr(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class TauPrior:
    """A prior on the heterogeneity ``tau`` (standard deviation of the true effects).

    ``family`` is one of :data:`PRIOR_FAMILIES`; ``params`` in that family's order. ``source``
    says where the numbers come from (filled by ``auto``).
    """

    family: str
    params: tuple[float, ...]
    source: str = field(default="", compare=False)

    def __post_init__(self):
        if self.family not in PRIOR_FAMILIES:
            raise PriorError(f"unknown tau prior family {self.family!r} (one of {', '.join(PRIOR_FAMILIES)})")
        names = PRIOR_FAMILIES[self.family]
        if len(self.params) != len(names):
            raise PriorError(f"{self.family} takes {len(names)} parameter(s) ({', '.join(names)}), got {len(self.params)}")
        if not all(math.isfinite(p) for p in self.params):
            raise PriorError(f"{self.family}: parameters must be finite numbers")
        positive = {"half_normal": (0,), "half_cauchy": (0,), "lognormal_tau2": (1,), "log_t_tau2": (1, 2), "uniform": (0,)}
        for i in positive[self.family]:
            if self.params[i] <= 0:
                raise PriorError(f"{self.family}: {names[i]} must be > 0 (got {self.params[i]:g})")

    @property
    def label(self) -> str:
        """The prior in the config's syntax, e.g. ``half_normal(0.5)``."""
        return f"{self.family}({', '.join(_num(p) for p in self.params)})"

    def logpdf_u(self, u: np.ndarray) -> np.ndarray:
        """Log density of ``u = log tau``."""
        u = np.asarray(u, dtype=float)
        t = np.exp(u)
        f, p = self.family, self.params
        if f == "half_normal":
            s = p[0]
            return math.log(2) - 0.5 * _LOG2PI - math.log(s) - 0.5 * (t / s) ** 2 + u
        if f == "half_cauchy":
            s = p[0]
            return math.log(2 / math.pi) - math.log(s) - np.log1p((t / s) ** 2) + u
        if f == "lognormal_tau2":  # log tau = u ~ N(mean/2, (sd/2)^2)
            m, sd = p[0] / 2, p[1] / 2
            return -0.5 * _LOG2PI - math.log(sd) - 0.5 * ((u - m) / sd) ** 2
        if f == "log_t_tau2":  # log tau^2 = 2u ~ location + scale * t_df
            loc, sc, df = p
            z = (2 * u - loc) / sc
            logt = gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * math.log(df * math.pi) - (df + 1) / 2 * np.log1p(z * z / df)
            return logt + math.log(2 / sc)
        # uniform(upper)
        return np.where(t <= p[0], u - math.log(p[0]), -np.inf)

    def cdf(self, tau: float) -> float:
        """Prior probability that the heterogeneity is at most ``tau``."""
        f, p = self.family, self.params
        if tau <= 0:
            return 0.0
        if f == "half_normal":
            return float(math.erf(tau / (p[0] * math.sqrt(2))))
        if f == "half_cauchy":
            return 2 / math.pi * math.atan(tau / p[0])
        if f == "lognormal_tau2":
            return float(ndtr((2 * math.log(tau) - p[0]) / p[1]))
        if f == "log_t_tau2":
            return float(stdtr(p[2], (2 * math.log(tau) - p[0]) / p[1]))
        return min(tau / p[0], 1.0)

    def log_sf(self, tau: float) -> float:
        """Log of the prior probability that the heterogeneity exceeds ``tau``."""
        f, p = self.family, self.params
        if f == "half_normal":
            return float(log_ndtr(-tau / p[0])) + math.log(2)
        if f == "half_cauchy":
            return math.log(2 / math.pi * math.atan(p[0] / tau))
        if f == "lognormal_tau2":
            return float(log_ndtr(-(2 * math.log(tau) - p[0]) / p[1]))
        if f == "log_t_tau2":
            v = float(stdtr(p[2], -(2 * math.log(tau) - p[0]) / p[1]))
            return math.log(v) if v > 0 else -math.inf
        return -math.inf if tau >= p[0] else math.log1p(-tau / p[0])

    def quantile(self, q: float) -> float:
        """Prior quantile of ``tau`` (for descriptions of the prior)."""
        return _bisect_quantile(self.cdf, q, 1.0)


@dataclass(frozen=True)
class MuPrior:
    """Prior on the overall effect: flat (``sd is None``) or ``normal(mean, sd)``."""

    mean: float | None = None
    sd: float | None = None

    @property
    def label(self) -> str:
        return "flat" if self.sd is None else f"normal({_num(self.mean)}, {_num(self.sd)})"


_CALL = re.compile(r"^\s*([a-z_0-9]+)\s*(?:\(\s*(.*?)\s*\))?\s*$")


def _parse_call(text: str) -> tuple[str, tuple[float, ...]]:
    m = _CALL.match(str(text))
    if not m:
        raise PriorError(f"cannot read prior {text!r}: expected name(number, ...)")
    name, args = m.group(1), m.group(2)
    vals: tuple[float, ...] = ()
    if args:
        try:
            vals = tuple(float(a) for a in args.split(","))
        except ValueError:
            raise PriorError(f"cannot read prior {text!r}: parameters must be numbers") from None
    return name, vals


def parse_tau_prior(text: str) -> TauPrior:
    """Read a tau prior written in the config's syntax, e.g. ``half_normal(0.5)``."""
    name, vals = _parse_call(text)
    if name not in PRIOR_FAMILIES:
        raise PriorError(f"unknown tau prior {text!r}: use auto or one of {', '.join(f + '(...)' for f in PRIOR_FAMILIES)}")
    return TauPrior(name, vals, source="set in the config")


def parse_mu_prior(text: str) -> MuPrior:
    """Read a mu prior: ``flat`` or ``normal(mean, sd)``."""
    name, vals = _parse_call(text)
    if name == "flat" and not vals:
        return MuPrior()
    if name == "normal" and len(vals) == 2 and vals[1] > 0 and all(map(math.isfinite, vals)):
        return MuPrior(vals[0], vals[1])
    raise PriorError(f"unknown mu prior {text!r}: use flat or normal(mean, sd) with sd > 0")


# --- published heterogeneity priors ---------------------------------------------------------------

# Turner et al. 2015, Stat Med 34:984, Table IV: log-normal predictive distribution of tau² for log
# odds ratios, (mean, sd) of log tau², by outcome type and type of comparison. (Also in R's bayesmeta,
# TurnerEtAlPrior().) Only the outcome types used by `auto` are listed.
TURNER_2015 = {
    "pain": {
        ("pharmacological", "placebo / control"): (-1.83, 1.52),
        ("pharmacological", "pharmacological"): (-2.06, 1.58),
        ("non-pharmacological", "placebo / control"): (-2.05, 1.71),
        ("non-pharmacological", "pharmacological"): (-0.80, 1.24),
        ("non-pharmacological", "non-pharmacological"): (-1.38, 1.45),
    },
    "subjective outcomes (various)": {
        ("pharmacological", "placebo / control"): (-2.70, 1.52),
        ("pharmacological", "pharmacological"): (-2.93, 1.58),
        ("non-pharmacological", "placebo / control"): (-2.92, 1.71),
        ("non-pharmacological", "pharmacological"): (-1.67, 1.25),
        ("non-pharmacological", "non-pharmacological"): (-2.26, 1.45),
    },
}
TURNER_2015_ANY = (-2.56, 1.74)  # all outcomes and comparisons pooled (Turner 2015, p. 993)

# Rhodes et al. 2015, J Clin Epidemiol 68:52, Table 3: log-t (5 df) predictive distribution of tau²
# for standardised mean differences, (location, scale) of log tau², outcome type "general physical
# health and adverse event and pain and quality of life / functioning", by type of comparison.
RHODES_2015 = {
    "pharmacological vs placebo / control": (-3.16, 2.50),
    "pharmacological vs pharmacological": (-3.44, 2.44),
    "non-pharmacological (any)": (-3.02, 2.27),
}
RHODES_2015_DF = 5

# Intervention class (config `interventions.*.class`) -> comparator category of Turner/Rhodes.
CLASS_CATEGORY = {
    "injection": "pharmacological",
    "manual": "non-pharmacological",
    "needling": "non-pharmacological",
    "other_active": "non-pharmacological",
    "sham": "placebo / control",
    "control": "placebo / control",
}


def _turner_type(a: str, b: str) -> tuple[str, str] | None:
    """Turner's comparison type for two comparator categories (order-free), None for control vs control."""
    order = ["non-pharmacological", "pharmacological", "placebo / control"]
    x, y = sorted((a, b), key=order.index)
    return None if x == y == "placebo / control" else (x, y)


def _rhodes_type(a: str, b: str) -> str | None:
    if "non-pharmacological" in (a, b):
        return "non-pharmacological (any)"
    if a == b == "pharmacological":
        return "pharmacological vs pharmacological"
    if {a, b} == {"pharmacological", "placebo / control"}:
        return "pharmacological vs placebo / control"
    return None


def auto_tau_prior(measure: str, outcome_code: str, classes_int: list[str], classes_cmp: list[str],
                   comparator_sd: float | None = None) -> TauPrior:
    """The published heterogeneity prior ``auto`` chooses for an analysis.

    Each side's intervention classes map to a comparator category (:data:`CLASS_CATEGORY`). When a
    side mixes categories, every combination is considered and the one whose prior has the largest
    median heterogeneity is used (the most cautious choice).

    - RR, OR (and RD, for which no published prior exists, so the log-odds-ratio prior is a
      stand-in): Turner 2015, outcome type ``pain`` for outcome codes starting with ``pain``,
      otherwise ``subjective outcomes (various)``; log-normal on tau².
    - SMD: Rhodes 2015, outcome type "general physical health / adverse event / pain / quality of
      life / functioning"; log-t with 5 df on tau².
    - MD: the SMD prior scaled by the median comparator SD (``tau_MD = SD * tau_SMD``, i.e. log tau²
      shifted by ``2 log SD``, location rounded to 4 decimals).
    """
    cats_i = sorted({CLASS_CATEGORY.get(c, "non-pharmacological") for c in classes_int})
    cats_c = sorted({CLASS_CATEGORY.get(c, "non-pharmacological") for c in classes_cmp})
    pairs = [(a, b) for a in cats_i for b in cats_c]
    if measure in ("RR", "OR", "RD"):
        otype = "pain" if outcome_code.startswith("pain") else "subjective outcomes (various)"
        cands = []
        for a, b in pairs:
            t = _turner_type(a, b)
            if t is not None:
                mean, sd = TURNER_2015[otype][t]
                cands.append((mean, sd, f"{t[0]} vs {t[1]}"))
        if not cands:
            mean, sd = TURNER_2015_ANY
            return TauPrior("lognormal_tau2", (mean, sd), source="Turner et al. 2015 (Stat Med 34:984), all outcome and comparison types")
        mean, sd, ctype = max(cands, key=lambda c: c[0])  # median tau² = exp(mean)
        stand_in = " (log odds ratio prior used for the risk difference)" if measure == "RD" else ""
        return TauPrior("lognormal_tau2", (mean, sd),
                        source=f"Turner et al. 2015 (Stat Med 34:984) Table IV: outcome type {otype}, {ctype}{stand_in}")
    cands = []
    for a, b in pairs:
        t = _rhodes_type(a, b)
        if t is not None:
            cands.append((*RHODES_2015[t], t))
    if not cands:
        loc, sc, ctype = -3.44, 2.59, "all comparison types (general setting)"
    else:
        loc, sc, ctype = max(cands, key=lambda c: (c[0], c[1]))
    src = f"Rhodes et al. 2015 (J Clin Epidemiol 68:52) Table 3: pain / functioning outcomes, {ctype}"
    if measure == "MD":
        if not comparator_sd or comparator_sd <= 0:
            raise PriorError("tau prior auto for MD needs a comparator SD (none available): set bayes.tau_prior")
        loc = round(loc + 2 * math.log(comparator_sd), 4)
        src += f"; scaled to the outcome's units by the median comparator SD {comparator_sd:.4g}"
    return TauPrior("log_t_tau2", (loc, sc, RHODES_2015_DF), source=src)


# ---------------------------------------------------------------------------------------------
# computation
# ---------------------------------------------------------------------------------------------

_GL_N = 24
U_MAX = 300.0  # largest log tau integrated (tau² = e^600 stays a finite double)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_GL_N)


def _bisect_quantile(cdf, q: float, start: float) -> float:
    lo, hi = 0.0, start
    while cdf(hi) < q:
        lo, hi = hi, hi * 2
    return brentq(lambda t: cdf(t) - q, lo, hi, xtol=1e-15, rtol=1e-13, maxiter=500)


#: Largest studies x tau-nodes block :func:`_cond` works on at once (~16 MB per array): with k = 100,000
#: studies and ~2,400 nodes one block would need ~2 GB per temporary array.
COND_BLOCK = 2_000_000


def _cond(y: np.ndarray, v: np.ndarray, tau2: np.ndarray, mu_prior: MuPrior):
    """Conditional posterior moments of mu given tau², and log marginal likelihood of tau (up to a constant).

    Columns of ``tau2`` (shape (m,)) broadcast against studies (rows). When studies x nodes exceed
    :data:`COND_BLOCK` the nodes are taken in blocks (memory bounded; the sums over studies then agree
    with one block to rounding); below it, as for every analysis of the shipped data, in
    one block.
    """
    step = max(1, COND_BLOCK // max(1, len(y)))
    if len(tau2) > step:
        parts = [_cond_block(y, v, tau2[i : i + step], mu_prior) for i in range(0, len(tau2), step)]
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))
    return _cond_block(y, v, tau2, mu_prior)


def _cond_block(y: np.ndarray, v: np.ndarray, tau2: np.ndarray, mu_prior: MuPrior):
    var = v[:, None] + tau2[None, :]
    w = 1.0 / var
    sw = w.sum(axis=0)
    swy = (w * y[:, None]).sum(axis=0)
    logdet = np.log(var).sum(axis=0)
    if mu_prior.sd is not None:
        w0 = 1.0 / mu_prior.sd**2
        sw = sw + w0
        swy = swy + w0 * mu_prior.mean
    m = swy / sw
    q = (w * (y[:, None] - m[None, :]) ** 2).sum(axis=0)
    if mu_prior.sd is not None:
        q = q + (mu_prior.mean - m) ** 2 / mu_prior.sd**2
    loglik = -0.5 * (logdet + np.log(sw) + q)
    return m, 1.0 / sw, loglik


@dataclass
class Posterior:
    """The discretised joint posterior: ``tau`` nodes with weights ``p`` (summing to 1) and the
    conditional normal posterior of mu at each node (mean ``m``, variance ``s2``)."""

    y: np.ndarray
    v: np.ndarray
    tau_prior: TauPrior
    mu_prior: MuPrior
    tau: np.ndarray
    p: np.ndarray
    m: np.ndarray
    s2: np.ndarray
    u_edges: np.ndarray  # panel edges in log tau
    tau_lo: float
    mass_lo: float  # posterior mass of [0, tau_lo]
    logz: float  # log normaliser (of the u-density, relative to the likelihood's constant)
    loglik0: float

    # --- heterogeneity ---------------------------------------------------------------------------
    def tau_cdf(self, t: float) -> float:
        """Posterior P(tau <= t)."""
        if t <= 0:
            return 0.0
        if t <= self.tau_lo:
            return float(self.tau_prior.cdf(t) * math.exp(self.loglik0 - self.logz))
        u = math.log(t)
        e = self.u_edges
        if u >= e[-1]:
            return 1.0
        j = int(np.searchsorted(e, u, side="right") - 1)
        full = self.mass_lo + float(self.p[: j * _GL_N].sum())
        a = e[j]
        if u > a:
            half = (u - a) / 2
            uu = a + half * (_GL_X + 1)
            tau = np.exp(uu)
            _, _, ll = _cond(self.y, self.v, tau**2, self.mu_prior)
            full += float((_GL_W * half * np.exp(self.tau_prior.logpdf_u(uu) + ll - self.logz)).sum())
        return min(full, 1.0)

    def tau_quantile(self, q: float) -> float:
        if q <= self.mass_lo:  # inside [0, tau_lo], where the likelihood is constant
            return brentq(lambda t: self.tau_cdf(t) - q, 0.0, self.tau_lo, xtol=1e-300, rtol=1e-14, maxiter=500)
        lo, hi = math.log(self.tau_lo), float(self.u_edges[-1])
        if self.tau_cdf(math.exp(hi)) < q:  # beyond the integrated range (numerically impossible)
            return math.exp(hi)
        return math.exp(brentq(lambda u: self.tau_cdf(math.exp(u)) - q, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500))

    # --- mixtures of normals ---------------------------------------------------------------------
    def _mix(self, what: str, study: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Means and SDs of the normal components (weights ``p``) of the posterior of ``what``:
        ``mu``, ``pred`` (a new study's true effect) or ``theta`` (study ``study``'s true effect)."""
        if what == "mu":
            return self.m, np.sqrt(self.s2)
        if what == "pred":
            return self.m, np.sqrt(self.s2 + self.tau**2)
        t2 = self.tau**2
        vi = self.v[study]
        b = t2 / (vi + t2)
        return b * self.y[study] + (1 - b) * self.m, np.sqrt(b * vi + (1 - b) ** 2 * self.s2)

    def cdf(self, x: float, what: str = "mu", study: int | None = None) -> float:
        m, s = self._mix(what, study)
        return float((self.p * ndtr((x - m) / s)).sum())

    def pdf(self, x: float, what: str = "mu", study: int | None = None) -> float:
        m, s = self._mix(what, study)
        z = (x - m) / s
        return float((self.p * np.exp(-0.5 * z * z) / (s * math.sqrt(2 * math.pi))).sum())

    def moments(self, what: str = "mu", study: int | None = None) -> tuple[float, float]:
        m, s = self._mix(what, study)
        mean = float((self.p * m).sum())
        var = float((self.p * (s**2 + (m - mean) ** 2)).sum())
        return mean, math.sqrt(var)

    def quantile(self, q: float, what: str = "mu", study: int | None = None) -> float:
        m, s = self._mix(what, study)
        live = self.p > 1e-12  # the quantile lies between the components' quantiles; start there
        qs = m[live] + s[live] * ndtri(q)
        lo, hi = float(qs.min()), float(qs.max())

        def f(x):
            return float((self.p * ndtr((x - m) / s)).sum()) - q

        step = max(hi - lo, float(s[live].min()))
        while f(lo) > 0:
            lo -= step
            step *= 2
        step = max(hi - lo, float(s[live].min()))
        while f(hi) < 0:
            hi += step
            step *= 2
        if lo == hi:
            return lo
        return brentq(f, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)

    def shortest(self, level: float = 0.95, what: str = "mu", study: int | None = None) -> tuple[float, float]:
        """Shortest interval with posterior probability ``level`` (the density is equal at both ends)."""
        eps = 1e-10

        def h(pl):
            return self.pdf(self.quantile(pl, what, study), what, study) - self.pdf(self.quantile(pl + level, what, study), what, study)

        pl = brentq(h, eps, 1 - level - eps, xtol=1e-15, rtol=1e-14, maxiter=500)
        return self.quantile(pl, what, study), self.quantile(pl + level, what, study)

    def sd_finite(self) -> bool:
        """Whether the posterior SD of mu exists. With a flat mu prior the conditional variance of mu
        grows like tau²/k and the posterior of tau has a tail like tau^-(k-1) times the prior's: for
        k = 2 and a prior with a polynomial tail (half-Cauchy, tau^-2; log-t, tau^-1 |log tau|^-(df+1))
        E[tau²] is infinite, and so is the posterior SD (the mean and all quantiles exist)."""
        return not (self.mu_prior.sd is None and len(self.y) <= 2 and self.tau_prior.family in ("half_cauchy", "log_t_tau2"))

    def tau_moments(self) -> tuple[float, float]:
        mean = float((self.p * self.tau).sum())
        return mean, math.sqrt(float((self.p * (self.tau - mean) ** 2).sum()))


def posterior(yi, vi, tau_prior: TauPrior, mu_prior: MuPrior | None = None, *, panel_width: float = 0.25,
              tau_lo_factor: float = 1e-7, tail: float = 40.0) -> Posterior:
    """The discretised posterior of a normal-normal random-effects model.

    Parameters
    ----------
    yi, vi : array_like
        Study estimates and their (within-study) variances.
    tau_prior : TauPrior
    mu_prior : MuPrior, optional
        Flat when not given.
    panel_width, tau_lo_factor, tail
        Quadrature settings (panel width in log tau, lower cut as a fraction of the smallest
        within-study SD, upper cut at ``exp(-tail)`` of the peak); the defaults give relative errors
        far below 1e-6 (tests compare with a finer grid).
    """
    mu_prior = mu_prior or MuPrior()
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    if y.ndim != 1 or y.shape != v.shape or len(y) == 0:
        raise ValueError("yi and vi must be 1-d arrays of the same non-zero length")
    if not (np.isfinite(y).all() and np.isfinite(v).all() and (v > 0).all()):
        raise ValueError("yi must be finite and vi finite and > 0")
    if len(y) == 1 and mu_prior.sd is None:
        raise ValueError("one study with a flat mu prior: the posterior of mu is improper in tau")
    tau_lo = tau_lo_factor * math.sqrt(float(v.min()))

    def logg(u):
        u = np.atleast_1d(np.asarray(u, dtype=float))
        _, _, ll = _cond(y, v, np.exp(2 * u), mu_prior)
        return tau_prior.logpdf_u(u) + ll

    # upper limit
    spread = float(y.max() - y.min()) if len(y) > 1 else 0.0
    scale = max(math.sqrt(float(v.max())), spread)
    if tau_prior.family == "uniform":
        u_hi = math.log(tau_prior.params[0])
    else:
        t_hi = 10 * max(scale, tau_prior.quantile(0.5))
        while True:
            grid = np.linspace(math.log(tau_lo), math.log(t_hi), 400)
            peak = float(np.max(logg(grid)))
            _, _, ll = _cond(y, v, np.array([t_hi**2]), mu_prior)
            if float(ll[0]) + tau_prior.log_sf(t_hi) < peak - tail or t_hi > 1e12 * scale:
                break
            t_hi *= 4
        u_hi = math.log(t_hi)
    u_lo = math.log(tau_lo)
    if u_hi <= u_lo:
        raise ValueError("the tau prior puts no mass above the lowest integration point")
    npanel = max(1, math.ceil((u_hi - u_lo) / panel_width))
    edges = np.linspace(u_lo, u_hi, npanel + 1)
    if tau_prior.family != "uniform":
        # Beyond u_hi the posterior mass is negligible, but E[tau²] (hence the posterior SD of mu)
        # can converge only logarithmically there (log-t prior, k = 3): panels growing
        # geometrically up to log tau = U_MAX carry the tail.
        tail_edges = [u_hi]
        w = panel_width
        while tail_edges[-1] < U_MAX:
            w *= 1.5
            tail_edges.append(min(tail_edges[-1] + w, U_MAX))
        edges = np.concatenate([edges, tail_edges[1:]])
    half = (edges[1:] - edges[:-1]) / 2
    mid = (edges[1:] + edges[:-1]) / 2
    u = (mid[:, None] + half[:, None] * _GL_X[None, :]).ravel()
    wq = (half[:, None] * _GL_W[None, :]).ravel()
    tau = np.exp(u)
    m, s2, ll = _cond(y, v, tau**2, mu_prior)
    logw = np.log(wq) + tau_prior.logpdf_u(u) + ll
    m0, s20, ll0 = _cond(y, v, np.array([0.0]), mu_prior)
    plo = tau_prior.cdf(tau_lo)
    log_lo = math.log(plo) + float(ll0[0]) if plo > 0 else -math.inf
    top = max(float(logw.max()), log_lo)
    total = float(np.exp(logw - top).sum()) + math.exp(log_lo - top)
    logz = top + math.log(total)
    p = np.exp(logw - logz)
    mass_lo = math.exp(log_lo - logz)
    # node 0 stands for [0, tau_lo] (tau = 0 terms)
    return Posterior(
        y=y, v=v, tau_prior=tau_prior, mu_prior=mu_prior,
        tau=np.concatenate([tau, [0.0]]), p=np.concatenate([p, [mass_lo]]),
        m=np.concatenate([m, m0]), s2=np.concatenate([s2, s20]), u_edges=edges, tau_lo=tau_lo,
        mass_lo=mass_lo, logz=logz, loglik0=float(ll0[0]),
    )  # fmt: skip


#: Nodes of the posterior with a weight below this are left out of the per-study summaries: together they
#: weigh at most (number of nodes) x 1e-18, a few 1e-15, which moves no quantile by more than that times
#: the study's posterior SD.
P_NEGLIGIBLE = 1e-18
#: Elements (studies x nodes) per block of :func:`study_summaries` (bounds its memory, ~16 MB per array).
STUDY_BLOCK = 2_000_000


def study_summaries(post: Posterior, probs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean, SD and quantiles ``probs`` of every study's true effect ``theta_i``, all at once.

    The same quantities as ``post.moments("theta", i)`` and ``post.quantile(q, "theta", i)`` (each a
    mixture of normals over the tau nodes, Röver 2020, section 2.4 "shrinkage estimates"), computed for
    blocks of studies as arrays: the quantiles by a safeguarded Newton iteration on the mixture CDF,
    started inside the bracket of the components' quantiles, with bisection whenever a Newton step
    would leave the bracket. Linear in the number of studies (one study at a time with ``brentq`` cost
    ~3.5 ms each). Nodes weighing less than :data:`P_NEGLIGIBLE` are left out.

    Returns
    -------
    mean, sd : ndarray, shape (k,)
    quantiles : ndarray, shape (k, len(probs))
    """
    live = post.p > P_NEGLIGIBLE
    p, t2, m, s2 = post.p[live], post.tau[live] ** 2, post.m[live], post.s2[live]
    k = len(post.y)
    mean, sd, quant = np.empty(k), np.empty(k), np.empty((k, len(probs)))
    block = max(1, STUDY_BLOCK // len(p))
    for start in range(0, k, block):
        i = slice(start, min(start + block, k))
        vi = post.v[i][:, None]
        b = t2 / (vi + t2)
        mix_m = b * post.y[i][:, None] + (1 - b) * m
        mix_s = np.sqrt(b * vi + (1 - b) ** 2 * s2)
        mu = (p * mix_m).sum(axis=1)
        mean[i] = mu
        sd[i] = np.sqrt((p * (mix_s**2 + (mix_m - mu[:, None]) ** 2)).sum(axis=1))
        for j, q in enumerate(probs):
            quant[i, j] = _mixture_quantiles(p, mix_m, mix_s, q)
    return mean, sd, quant


def _mixture_quantiles(p: np.ndarray, m: np.ndarray, s: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile of each row's mixture of normals (weights ``p``, means ``m``, SDs ``s``)."""
    comp = m + s * ndtri(q)  # the mixture's quantile lies between its components' quantiles
    lo, hi = comp.min(axis=1), comp.max(axis=1)
    x = (p * comp).sum(axis=1)
    x = np.clip(x, lo, hi)
    norm = math.sqrt(2 * math.pi)
    todo = np.flatnonzero(hi > lo)
    for _ in range(200):
        if not len(todo):
            break
        xt, mt, st = x[todo], m[todo], s[todo]
        z = (xt[:, None] - mt) / st
        f = (p * ndtr(z)).sum(axis=1) - q
        dens = (p * np.exp(-0.5 * z * z) / st).sum(axis=1) / norm
        lo[todo] = np.where(f < 0, xt, lo[todo])
        hi[todo] = np.where(f > 0, xt, hi[todo])
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xt - f / dens
        tol = 1e-14 + 4e-16 * np.abs(xt)
        # converged: a Newton step below the tolerance (it may touch the bracket) where the CDF is already
        # within 1e-12 of q; a tiny step with the CDF still off (a steep point far from the root) bisects
        small = np.abs(xn - xt) <= tol
        done = small & (np.abs(f) <= 1e-12)
        outside = ~((xn > lo[todo]) & (xn < hi[todo])) | (small & ~done)
        xn = np.where(outside & ~done, 0.5 * (lo[todo] + hi[todo]), xn)
        settled = (f == 0) | done | (hi[todo] - lo[todo] <= tol)
        x[todo] = np.where(f == 0, xt, xn)
        todo = todo[~settled]
    return x


def benefit_probabilities(post: Posterior, benefit: str | None, mid: float | None) -> tuple[float | None, float | None]:
    """P(the effect favours the intervention) and P(it is an important benefit, beyond ``mid``).

    ``benefit`` is ``"higher"`` or ``"lower"`` (the direction that favours the intervention); both are None
    when the direction is not known, and the second is None without a ``mid``.
    """
    if benefit is None:
        return None, None
    below0 = post.cdf(0.0)
    pb = 1 - below0 if benefit == "higher" else below0
    pib = None
    if mid is not None:
        pib = 1 - post.cdf(mid) if benefit == "higher" else post.cdf(-mid)
    return pb, pib


def summarise(post: Posterior, *, level: float = 0.95, benefit: str | None = None, mid: float | None = None,
              study_ids: list[str] | None = None) -> BayesResult:
    """Posterior summaries of the output contract.

    ``benefit`` is ``"higher"`` when larger values of the effect favour the intervention, ``"lower"``
    when smaller values do (None: probabilities not computed). ``mid`` (> 0, analysis scale) is the
    smallest important effect: P(important benefit) = P(mu > mid) or P(mu < -mid).
    """
    a = (1 - level) / 2
    mean, sd = post.moments()
    if not post.sd_finite():
        sd = None
    lo_hdi, hi_hdi = post.shortest(level)
    pb, pib = benefit_probabilities(post, benefit, mid)
    means, sds, qs = study_summaries(post, (0.5, a, 1 - a))
    studies = tuple(
        BayesStudy(study_id=study_ids[i] if study_ids else str(i), median=float(qs[i, 0]), mean=float(means[i]),
                   sd=float(sds[i]), ci_low=float(qs[i, 1]), ci_high=float(qs[i, 2]))
        for i in range(len(post.y))
    )  # fmt: skip
    return BayesResult(
        k=len(post.y), tau_prior=post.tau_prior.label, tau_prior_source=post.tau_prior.source,
        mu_prior=post.mu_prior.label, estimate=post.quantile(0.5), mean=mean, sd=sd,
        ci_low=post.quantile(a), ci_high=post.quantile(1 - a), hdi_low=lo_hdi, hdi_high=hi_hdi,
        pi_low=post.quantile(a, "pred"), pi_high=post.quantile(1 - a, "pred"),
        tau_median=post.tau_quantile(0.5), tau_ci_low=post.tau_quantile(a), tau_ci_high=post.tau_quantile(1 - a),
        prob_benefit=pb, prob_important_benefit=pib, mid=mid, studies=studies,
    )  # fmt: skip


def bayes_meta(yi, vi, tau_prior: TauPrior | str, mu_prior: MuPrior | str | None = None, **kw) -> BayesResult:
    """Bayesian random-effects meta-analysis: :func:`posterior` then :func:`summarise`.

    ``tau_prior`` and ``mu_prior`` may be given in the config's syntax. Keyword arguments go to
    :func:`summarise` (``level``, ``benefit``, ``mid``, ``study_ids``).
    """
    if isinstance(tau_prior, str):
        tau_prior = parse_tau_prior(tau_prior)
    if isinstance(mu_prior, str):
        mu_prior = parse_mu_prior(mu_prior)
    return summarise(posterior(yi, vi, tau_prior, mu_prior), **kw)


__all__ = [
    "PRIOR_FAMILIES", "TauPrior", "MuPrior", "PriorError", "parse_tau_prior", "parse_mu_prior", "auto_tau_prior",
    "posterior", "summarise", "bayes_meta", "BayesResult", "Posterior", "CLASS_CATEGORY", "TURNER_2015",
    "RHODES_2015", "study_summaries",
]  # fmt: skip
