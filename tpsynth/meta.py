"""The public fit object: ``meta_analysis(yi, vi, mods=...)`` (metafor ``rma.uni`` style).

>>> from tpsynth import meta_analysis
>>> fit = meta_analysis([0.1, 0.3, 0.35, 0.65], [0.01, 0.02, 0.015, 0.05], method="DL", ci="wald")
>>> round(fit.estimate, 4)
0.2974

A :class:`MetaAnalysis` keeps its data (``yi``, ``vi``, design matrix ``X``, study labels) and its
settings, is immutable (frozen dataclass, read-only arrays) and refits the one engine,
:func:`tpsynth.pooling.pool_many`, for every diagnostic, as metafor's methods refit ``rma()``
(``leave_one_out`` and ``cumulative`` of an intercept-only model: the same fits from per-subset sums,
:mod:`tpsynth.subset_fits`): ``leave_one_out``, ``cumulative``, ``subset``, ``egger`` (``regtest(model="lm")``), ``trimfill``,
``permutation_test`` (``permutest``) and ``predict``.  ``forest``, ``funnel`` and ``bubble`` draw the
figures with the pipeline's own figure code, as new figures or into a user's axes (``ax=``).

Moderators (``mods``) are given as

* a numeric array of shape (k,) or (k, m) (columns ``x1``, ``x2``, ... or ``names``),
* a pandas DataFrame, or a list of column names of ``data``: numeric columns are covariates, text
  (object / category / bool) columns are factors coded as dummies against a reference level, the
  first level in sorted order unless ``reference={"column": "level"}`` says otherwise (metafor's
  ``factor()`` default); the coefficient of a level is named ``column[level]``.

Every statistic is checked against metafor 3.8-1 by ``tests/test_meta.py`` (reference values from
``tests/reference/make_reference.R``): coefficients, their tests and intervals for the tests
``"wald"``, ``"hksj"`` and ``"hksj_adhoc"`` (metafor ``test = "z"``, ``"knha"``, ``"adhoc"``),
QM, QE, tau^2 with its Q-profile interval, I^2, H^2, the pseudo R^2, predictions and exact
permutation tests.

References
----------
Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package. J Stat Softw 36(3).
Knapp G, Hartung J (2003). Improved tests for a random effects meta-regression with a single
covariate. Stat Med 22:2693-2710.
Raudenbush SW (2009). Analyzing effect sizes: random-effects models. In: Cooper H, Hedges LV,
Valentine JC (eds), The Handbook of Research Synthesis and Meta-Analysis, 2nd ed., 295-315.
Higgins JPT, Thompson SG (2004). Controlling the risk of spurious findings from meta-regression.
Stat Med 23:1663-1682 (permutation tests).
Follmann DA, Proschan MA (1999). Valid inference in random effects meta-analysis. Biometrics
55:732-737 (sign-flip permutation test of the intercept-only model).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from . import pooling, subset_fits

__all__ = ["MetaAnalysis", "PermutationResult", "design_matrix", "meta_analysis"]

#: Iterations of an approximate permutation test (metafor ``permutest`` default ``iter``).
PERMUTATION_ITER = 1000
#: Seed of the approximate permutation test (results are reproducible run to run).
PERMUTATION_SEED = 20240601
#: Tolerance of "at least as extreme" in the permutation p-value (metafor ``comptol``).
PERMUTATION_COMPTOL = math.sqrt(np.finfo(float).eps)


def _readonly(a) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _columns(mods, data, names) -> list[tuple[str, list]]:
    """Moderators as (name, values) pairs, whatever form they were given in."""
    if isinstance(mods, dict):
        return [(str(c), list(v)) for c, v in mods.items()]
    if isinstance(mods, (list, tuple)) and mods and all(isinstance(m, str) for m in mods):
        if data is None:
            raise ValueError("moderators given by name need data=")
        cols = list(data.columns) if hasattr(data, "columns") else list(data)
        missing = [m for m in mods if m not in cols]
        if missing:
            raise ValueError(f"moderator column(s) not in data: {', '.join(missing)}")
        return _columns({m: list(data[m]) for m in mods}, None, None)
    if hasattr(mods, "columns") and hasattr(mods, "dtypes"):  # pandas DataFrame
        out = []
        for c in mods.columns:
            col = mods[c]
            numeric = col.dtype.kind in "iuf"
            out.append((str(c), [float(x) if numeric else x for x in col.tolist()]))
        return out
    arr = np.asarray(mods, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    cols = list(names) if names is not None else [f"x{j + 1}" for j in range(arr.shape[1])]
    return [(str(c), arr[:, j].tolist()) for j, c in enumerate(cols)]


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(x, str) and x.strip() == "")


def design_matrix(mods=None, data=None, reference: dict | None = None, names=None, k: int | None = None):
    """Design matrix with intercept, term names and the coding needed to encode new rows.

    A moderator whose values are all numbers is a covariate; any other (text, booleans) is a
    factor coded as dummies against its reference level (the first in sorted order unless
    ``reference`` names another), metafor's ``factor()`` coding.

    Returns
    -------
    (X, terms, coding)
        ``X`` (k x p, first column the intercept), ``terms`` (p names, the first ``"intrcpt"`` as
        in metafor; ``column[level]`` for a factor level) and ``coding``: one ``(column, levels)``
        tuple per moderator, ``levels`` None for a covariate, else the factor levels with the
        reference first.
    """
    reference = dict(reference or {})
    if mods is None:
        if k is None:
            raise ValueError("k is needed for an intercept-only design")
        return np.ones((k, 1)), ("intrcpt",), ()
    columns = _columns(mods, data, names)
    unknown = set(reference) - {c for c, _ in columns}
    if unknown:
        raise ValueError(f"reference level given for unknown moderator(s): {', '.join(sorted(unknown))}")
    n = len(columns[0][1]) if columns else (k or 0)
    cols, terms, coding = [np.ones(n)], ["intrcpt"], []
    for name, values in columns:
        if len(values) != n:
            raise ValueError(f"moderator {name!r} has {len(values)} values for {n} studies")
        if any(_missing(x) for x in values):
            raise ValueError(f"moderator {name!r} has missing values (drop those studies first)")
        if all(_is_number(x) for x in values):
            cols.append(np.asarray(values, dtype=float))
            terms.append(name)
            coding.append((name, None))
            continue
        sv = np.array([str(x) for x in values], dtype=object)
        levels = sorted(set(sv))
        ref = str(reference.get(name, levels[0]))
        if ref not in levels:
            raise ValueError(f"reference level {ref!r} of {name!r} is not among its levels {levels}")
        levels = [ref] + [lv for lv in levels if lv != ref]
        for lv in levels[1:]:
            cols.append((sv == lv).astype(float))
            terms.append(f"{name}[{lv}]")
        coding.append((name, tuple(levels)))
    X = np.column_stack(cols)
    return X, tuple(terms), tuple(coding)


def _encode(newmods, coding, p: int) -> np.ndarray:
    """Rows of a design matrix (with intercept) for ``predict(newmods)``."""
    if newmods is None:
        if p > 1:
            raise ValueError("newmods is needed to predict from a meta-regression")
        return np.ones((1, 1))
    if hasattr(newmods, "columns") and hasattr(newmods, "dtypes"):  # pandas DataFrame
        newmods = {c: newmods[c].tolist() for c in newmods.columns}
    if isinstance(newmods, dict):
        newmods = {c: list(np.atleast_1d(np.asarray(v, dtype=object))) for c, v in newmods.items()}
        n = len(next(iter(newmods.values()))) if newmods else 1
        cols = [np.ones(n)]
        for name, levels in coding:
            if name not in newmods:
                raise ValueError(f"newmods lacks moderator {name!r}")
            s = newmods[name]
            if levels is None:
                cols.append(np.asarray(s, dtype=float))
            else:
                sv = np.array([str(x) for x in s], dtype=object)
                bad = sorted(set(sv) - set(levels))
                if bad:
                    raise ValueError(f"unknown level(s) {bad} of {name!r}; known: {list(levels)}")
                cols.extend((sv == lv).astype(float) for lv in levels[1:])
        return np.column_stack(cols)
    arr = np.asarray(newmods, dtype=float)
    if arr.ndim <= 1:
        arr = arr.reshape(1, -1) if p > 2 or arr.ndim == 0 else arr.reshape(-1, 1)
    if arr.shape[1] == p - 1:
        arr = np.column_stack([np.ones(arr.shape[0]), arr])
    if arr.shape[1] != p:
        raise ValueError(f"newmods must have {p - 1} columns (one per coefficient but the intercept)")
    return arr


@dataclass(frozen=True)
class PermutationResult:
    """Permutation test of a fit (metafor ``permutest``).

    ``pval`` holds one p-value per coefficient (two-sided, |z| at least as extreme), ``qm_pvalue``
    the p-value of the omnibus test; ``exact`` tells whether all distinct permutations were used
    (``iter`` of them) or ``iter`` random ones drawn with ``seed`` (the observed data counted as
    the first).
    """

    pval: np.ndarray = field(repr=False)
    qm_pvalue: float
    exact: bool
    iter: int
    seed: int | None
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetaAnalysis:
    """An immutable fitted (mixed-effects) meta-analysis; build it with :func:`meta_analysis`.

    Attributes hold the data and settings (``yi``, ``vi``, ``X``, ``terms``, ``coding``, ``slab``,
    ``method_requested``, ``ci_requested``, ``level``) and the fit: ``beta``, ``se``, ``zval``,
    ``pval``, ``ci_low``, ``ci_high`` (one per term), ``vb``, ``df`` (t degrees of freedom, inf
    for Wald), ``tau2`` with ``tau2_ci_low``/``tau2_ci_high``/``tau2_ci_capped``, ``i2``,
    ``h2``, ``qe``/``qe_df``/``qe_pvalue`` (residual heterogeneity, Cochran's Q when
    intercept-only), ``qm``/``qm_df``/``qm_df2``/``qm_pvalue`` (omnibus test of the moderators;
    ``qm_df2`` NaN for chi^2), ``r2`` (pseudo R^2, %), ``weights`` (%), ``method`` (estimator used)
    and ``ci_method``, ``converged``, ``notes``.  For the intercept-only model also ``pi_low``,
    ``pi_high`` and the common-effect ``fe_*`` fields; :meth:`as_pooled` gives the
    :class:`tpsynth.pooling.PooledResult` the pipeline writes.
    """

    yi: np.ndarray = field(repr=False)
    vi: np.ndarray = field(repr=False)
    X: np.ndarray = field(repr=False)
    terms: tuple[str, ...]
    coding: tuple = field(repr=False)
    slab: tuple[str, ...] = field(repr=False)
    method_requested: str
    ci_requested: str
    level: float
    method: str
    ci_method: str
    k: int
    p: int
    beta: np.ndarray = field(repr=False)
    se: np.ndarray = field(repr=False)
    zval: np.ndarray = field(repr=False)
    pval: np.ndarray = field(repr=False)
    ci_low: np.ndarray = field(repr=False)
    ci_high: np.ndarray = field(repr=False)
    vb: np.ndarray = field(repr=False)
    df: float
    tau2: float
    tau2_ci_low: float
    tau2_ci_high: float
    tau2_ci_capped: bool
    i2: float
    i2_ci_low: float
    i2_ci_high: float
    h2: float
    qe: float
    qe_df: int
    qe_pvalue: float
    qm: float
    qm_df: int
    qm_df2: float
    qm_pvalue: float
    r2: float
    pi_low: float
    pi_high: float
    fe_estimate: float
    fe_se: float
    fe_ci_low: float
    fe_ci_high: float
    weights: np.ndarray = field(repr=False)
    converged: bool
    step_halved: bool
    notes: tuple[str, ...]

    # ------------------------------------------------------------------ basics
    @property
    def estimate(self) -> float:
        """The intercept (the pooled effect of an intercept-only model)."""
        return float(self.beta[0])

    @property
    def intercept_only(self) -> bool:
        return self.p == 1

    def _refit(self, yi=None, vi=None, X=None, **settings) -> MetaAnalysis:
        return _fit(
            self.yi if yi is None else yi,
            self.vi if vi is None else vi,
            self.X if X is None else X,
            self.terms,
            self.coding,
            settings.get("slab", self.slab),
            settings.get("method", self.method_requested),
            settings.get("ci", self.ci_requested),
            settings.get("level", self.level),
        )

    def refit(self, **settings) -> MetaAnalysis:
        """The same data refitted with another ``method``, ``ci`` or ``level``."""
        bad = set(settings) - {"method", "ci", "level"}
        if bad:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(bad))}")
        return self._refit(**settings)

    def as_pooled(self) -> pooling.PooledResult:
        """The intercept-only fit as the pipeline's :class:`~tpsynth.pooling.PooledResult`."""
        if self.p != 1:
            raise ValueError("as_pooled() is for intercept-only models")
        notes = list(self.notes)
        return pooling.PooledResult(
            k=self.k, method=self.method, ci_method=self.ci_method, level=self.level, estimate=self.estimate,
            se=float(self.se[0]), ci_low=float(self.ci_low[0]), ci_high=float(self.ci_high[0]),
            pvalue=float(self.pval[0]), pi_low=self.pi_low, pi_high=self.pi_high, tau2=self.tau2,
            tau2_ci_low=self.tau2_ci_low, tau2_ci_high=self.tau2_ci_high, i2=self.i2, i2_ci_low=self.i2_ci_low,
            i2_ci_high=self.i2_ci_high, h2=self.h2, q=self.qe, q_df=self.qe_df, q_pvalue=self.qe_pvalue,
            fe_estimate=self.fe_estimate, fe_se=self.fe_se, fe_ci_low=self.fe_ci_low, fe_ci_high=self.fe_ci_high,
            weights=np.array(self.weights), converged=self.converged, method_requested=self.method_requested,
            notes=tuple(notes), tau2_ci_capped=self.tau2_ci_capped,
        )  # fmt: skip

    # ------------------------------------------------------------------ tables
    def to_frame(self):
        """Coefficient table: term, estimate, se, statistic, pvalue, ci_low, ci_high."""
        import pandas as pd

        return pd.DataFrame({
            "term": list(self.terms), "estimate": self.beta, "se": self.se, "statistic": self.zval,
            "pvalue": self.pval, "ci_low": self.ci_low, "ci_high": self.ci_high,
        })  # fmt: skip

    def predict(self, newmods=None, level: float | None = None, frame: bool = True):
        """Predicted effects at moderator values (metafor ``predict(newmods=)``).

        ``pred = x' beta``, ``se = sqrt(x' V x)``, confidence interval ``pred +/- crit se`` and
        prediction interval ``pred +/- crit sqrt(se^2 + tau^2)`` with ``crit`` normal (Wald) or
        t(k - p) (Knapp-Hartung).  ``newmods``: rows of moderator values in the columns of the
        design matrix after the intercept (array), or a DataFrame / dict with the original
        moderator columns (factors by level).  None for an intercept-only model.  Returns a
        DataFrame (``frame=False``: a dict of numpy columns, without importing pandas).
        """
        level = self.level if level is None else level
        Xn = _encode(newmods, self.coding, self.p)
        pred = Xn @ self.beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", Xn, self.vb, Xn))
        alpha = 1 - level
        crit = -special.ndtri(alpha / 2) if not np.isfinite(self.df) else -special.stdtrit(self.df, alpha / 2)
        half_pi = crit * np.sqrt(se * se + self.tau2)
        cols = {
            "pred": pred, "se": se, "ci_low": pred - crit * se, "ci_high": pred + crit * se,
            "pi_low": pred - half_pi, "pi_high": pred + half_pi,
        }  # fmt: skip
        if not frame:
            return cols
        import pandas as pd

        return pd.DataFrame(cols)

    def _many(self, subsets: list[np.ndarray]):
        """All subsets' fits (in bounded-memory chunks; no tau² CI: the frames do not show it)."""
        return pooling.pool_subsets(
            self.yi, self.vi, subsets, self.method_requested, self.ci_requested, self.level, tau2_ci=False,
            X=None if self.p == 1 else self.X,
        )

    def _frame(self, out, labels, column, frame=True):
        cols = {column: labels, "k": out["k"]}
        if self.p == 1:
            for key in ("estimate", "se", "pvalue", "ci_low", "ci_high", "pi_low", "pi_high"):
                cols[key] = out[key]
        else:
            for j, t in enumerate(self.terms):
                cols[f"estimate[{t}]"] = out["beta"][:, j]
                cols[f"se[{t}]"] = out["se_beta"][:, j]
            cols["qm"], cols["qm_pvalue"] = out["qm"], out["qm_pvalue"]
        for key in ("q", "q_pvalue", "tau2", "i2", "h2"):
            cols[key] = out[key]
        cols["converged"] = out["converged"]
        if not frame:
            return cols
        import pandas as pd

        return pd.DataFrame(cols)

    def leave_one_out(self, frame: bool = True):
        """One fit per left-out study (metafor ``leave1out``).

        Intercept-only models: :func:`tpsynth.subset_fits.leave_one_out_fits` (about linear in k);
        meta-regressions: every subset refitted by the engine in bounded-memory chunks (k² work).

        Returns a DataFrame (``frame=False``: a dict of numpy columns, without importing pandas)
        with the left-out study's label, k, the estimate(s), heterogeneity and convergence.
        """
        if self.k < 2:
            raise ValueError("leave-one-out needs at least two studies")
        if self.p == 1:  # sums per subset, about linear in k (tpsynth.subset_fits)
            out = subset_fits.leave_one_out_fits(self.yi, self.vi, self.method_requested, self.ci_requested,
                                                 self.level)  # fmt: skip
        else:
            all_idx = np.arange(self.k)
            out = self._many([np.delete(all_idx, i) for i in range(self.k)])
        return self._frame(out, list(self.slab), "left_out", frame)

    def cumulative(self, order=None, frame: bool = True):
        """Cumulative meta-analysis (metafor ``cumul``): row i pools studies ``order[:i + 1]``.

        ``order`` is a 0-based permutation (e.g. ``np.argsort(year)``); default the input order.
        Returns a DataFrame (``frame=False``: a dict of numpy columns) as :meth:`leave_one_out`.
        """
        order = np.arange(self.k) if order is None else np.asarray(order, dtype=np.intp)
        if sorted(order.tolist()) != list(range(self.k)):
            raise ValueError("order must be a permutation of 0..k-1")
        if self.p == 1:
            out = subset_fits.cumulative_fits(self.yi, self.vi, order, self.method_requested, self.ci_requested,
                                              self.level)  # fmt: skip
        else:
            out = self._many([order[: i + 1] for i in range(self.k)])
        return self._frame(out, [self.slab[i] for i in order], "added", frame)

    def subset(self, mask) -> MetaAnalysis:
        """The same model refitted on the studies where ``mask`` is True (or on given indices)."""
        mask = np.asarray(mask)
        idx = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.intp)
        if mask.dtype == bool and mask.size != self.k:
            raise ValueError(f"mask must have one entry per study ({self.k})")
        return self._refit(self.yi[idx], self.vi[idx], self.X[idx], slab=tuple(self.slab[i] for i in idx))

    # ------------------------------------------------------------- small-study
    def egger(self):
        """Egger's regression test (metafor ``regtest(model="lm", predictor="sei")``).

        The engine fits ``yi = b0 + b1 sqrt(vi)`` (plus any moderators) by weighted least squares
        with weights 1/vi and an estimated residual variance, which is the common-effect model
        with the Knapp-Hartung scale factor; b1 is tested with t(k - p - 1).
        """
        from .small_study import egger_test

        return egger_test(self.yi, self.vi, level=self.level, X=self.X)

    def trimfill(self, estimator: str = "L0", side: str | None = None):
        """Trim-and-fill (metafor ``trimfill``) with this fit's estimator; intercept-only models."""
        from .small_study import trim_and_fill

        if self.p != 1:
            raise ValueError("trim-and-fill is defined for intercept-only models")
        return trim_and_fill(self.yi, self.vi, method=self.method_requested, estimator=estimator, side=side,
                             level=self.level)  # fmt: skip

    def permutation_test(self, iter: int = PERMUTATION_ITER, seed: int = PERMUTATION_SEED) -> PermutationResult:
        """Permutation test of the coefficients and of QM (metafor ``permutest``).

        Meta-regression: the rows of the design matrix are permuted (Higgins & Thompson, 2004);
        intercept-only: the signs of the effects are flipped (Follmann & Proschan, 1999).  The test
        is exact, over every distinct permutation, when there are at most ``iter`` of them (as
        metafor decides); otherwise ``iter`` random permutations drawn with numpy's PCG64 seeded
        by ``seed`` (default :data:`PERMUTATION_SEED`), the observed data being the first.  All
        permuted data sets are fitted in one vectorised engine call.  p-values: share of
        permutations with |z| (or QM) at least the observed one minus ``sqrt(eps)``.
        """
        k, p = self.k, self.p
        rng = np.random.default_rng(seed)
        if p == 1:
            n_exact = 2**k
            exact = n_exact <= iter
            if exact:
                signs = np.array(list(itertools.product((1.0, -1.0), repeat=k)))
            else:
                signs = rng.choice([-1.0, 1.0], size=(iter, k))
                signs[0] = 1.0
            n = signs.shape[0]
            yi = (signs * self.yi).ravel()
            vi = np.tile(self.vi, n)
            X = None
        else:
            rows = [tuple(r) for r in self.X]
            _, inv, counts = np.unique(np.array(rows), axis=0, return_inverse=True, return_counts=True)
            n_exact = math.factorial(k) // math.prod(math.factorial(int(c)) for c in counts)
            exact = n_exact <= iter
            if exact:
                perms = np.array(_unique_permutations(np.asarray(inv).ravel()))
                # rows of X by the permuted class labels: one representative row per class
                rep = np.array([np.flatnonzero(np.asarray(inv).ravel() == c)[0] for c in range(counts.size)])
                Xs = [self.X[rep[pm]] for pm in perms]
            else:
                Xs = [self.X] + [self.X[rng.permutation(k)] for _ in range(iter - 1)]
            n = len(Xs)
            yi = np.tile(self.yi, n)
            vi = np.tile(self.vi, n)
            X = np.vstack(Xs)
        grp = np.repeat(np.arange(n, dtype=np.intp), k)
        out = pooling.pool_many(yi, vi, grp, self.method_requested, self.ci_requested, self.level, tau2_ci=False,
                                n_groups=n, X=X)  # fmt: skip
        z = out["zval"]
        ok = np.isfinite(z).all(axis=1)
        pval = np.mean(np.abs(z[ok]) >= np.abs(self.zval) - PERMUTATION_COMPTOL, axis=0)
        qm = out["qm"][np.isfinite(out["qm"])]
        qm_p = float(np.mean(qm >= self.qm - PERMUTATION_COMPTOL))
        return PermutationResult(
            pval=_readonly(np.minimum(pval, 1.0)), qm_pvalue=qm_p, exact=bool(exact), iter=int(n),
            seed=None if exact else int(seed), terms=self.terms,
        )  # fmt: skip

    # ------------------------------------------------------------------ figures
    def bubble_data(self, moderator: str) -> dict:
        """Points and fitted line of a bubble plot on a continuous ``moderator`` (metafor ``regplot``):
        101 grid points from its minimum to its maximum, the other design columns at their means."""
        terms = list(self.terms)
        if moderator not in terms or dict(self.coding).get(moderator, ()) is not None:
            raise ValueError(f"{moderator!r} is not a continuous moderator of this model (terms: {', '.join(terms[1:])})")
        j = terms.index(moderator)
        x = np.asarray(self.X[:, j])
        grid = np.linspace(x.min(), x.max(), 101)
        rows = np.tile(self.X.mean(axis=0), (grid.size, 1))
        rows[:, j] = grid
        pr = self.predict(rows, frame=False)
        return {
            "moderator": moderator, "x": x.tolist(), "yi": self.yi.tolist(), "vi": self.vi.tolist(),
            "weights": self.weights.tolist(), "study_id": list(self.slab), "grid": grid.tolist(),
            "pred": pr["pred"].tolist(), "ci_low": pr["ci_low"].tolist(), "ci_high": pr["ci_high"].tolist(),
            "slope": float(self.beta[j]), "slope_pvalue": float(self.pval[j]),
        }  # fmt: skip

    def _analysis(self, measure, title, intervention, comparator):
        """The fit as the typed analysis result (:class:`tpsynth.results.AnalysisResult`) that the
        pipeline's figures draw: the same result type as :func:`tpsynth.analysis.run_analysis`."""
        from .analysis import MIN_K_SMALL_STUDY, _f, _pooled_dict, small_study_fields
        from .results import AnalysisResult

        level = self.level
        z = -special.ndtri((1 - level) / 2)
        studies = [
            {"study_id": s, "author": s, "year": None, "yi": float(y), "vi": float(v), "weight": float(w),
             "ci_low": float(y - z * math.sqrt(v)), "ci_high": float(y + z * math.sqrt(v)), "source": "contrast"}
            for s, y, v, w in zip(self.slab, self.yi, self.vi, self.weights, strict=True)
        ]  # fmt: skip
        out = {
            "analysis_id": title,
            "settings": {"measure": measure, "level": level, "title": title, "method": self.method, "ci": self.ci_method},
            "outcome": {"label": title}, "labels": {"intervention": [intervention], "comparator": [comparator]},
            "studies": studies,
        }  # fmt: skip
        if self.p == 1:
            out["pooled"] = {**_pooled_dict(self.as_pooled()), "measure": measure}
            if self.k >= MIN_K_SMALL_STUDY:
                out["small_study"] = small_study_fields(self)
        else:
            out["pooled"] = {"k": self.k, "measure": measure}
            out["meta_regression"] = {
                "moderators": [c for c, _ in self.coding], "k": self.k, "p": self.p, "terms": list(self.terms),
                "tau2": _f(self.tau2), "i2": _f(self.i2), "r2": _f(self.r2), "qm": _f(self.qm), "qm_df": int(self.qm_df),
                "qm_df2": _f(self.qm_df2), "qm_pvalue": _f(self.qm_pvalue), "method": self.method,
                "ci_method": self.ci_method, "bubble": [self.bubble_data(c) for c, lv in self.coding if lv is None],
            }  # fmt: skip
        return AnalysisResult.from_dict(out, source="meta_analysis()")

    def _not_a_regression(self, what: str) -> None:
        if self.p != 1:
            continuous = [c for c, lv in self.coding if lv is None]
            hint = (f"draw it with bubble({continuous[0]!r}, ax=...)" if continuous
                    else "its moderators are factors: see to_frame() and predict()")  # fmt: skip
            raise ValueError(f"{what}() draws intercept-only models; this fit is a meta-regression on "
                             f"{', '.join(c for c, _ in self.coding)}: {hint}")  # fmt: skip

    def forest(self, measure: str = "", title: str = "Meta-analysis", intervention: str = "Intervention",
               comparator: str = "Comparator", ax=None, sort_by: str = "none"):  # fmt: skip
        """Forest plot of an intercept-only fit, drawn by the pipeline's own code
        (:func:`tpsynth.figures.forest.forest_figure`).  ``measure`` (e.g. ``"RR"``) sets the axis
        label and back-transforms ratio measures.  The rows keep the order of ``yi`` (``sort_by="none"``,
        as metafor's ``forest()``); ``"effect"``, ``"weight"`` or ``"author"`` (the study label) sort them.

        Without ``ax``, returns a new matplotlib Figure (save it with
        :func:`tpsynth.figures.common.save_all` for byte-identical PNG, SVG and PDF).  With ``ax``
        (a :class:`matplotlib.axes.Axes`, e.g. one panel of ``fig.subplots(1, 2)``), draws the whole
        layout into it (text columns, the plot as an inset axes, footnotes; fonts and markers scaled to
        the axes, see :class:`tpsynth.figures.common.Canvas`) and returns ``ax``.  A meta-regression
        raises ValueError pointing to :meth:`bubble`."""
        from .figures.forest import forest_figure

        self._not_a_regression("forest")
        return forest_figure(self._analysis(measure, title, intervention, comparator), sort_by=sort_by, ax=ax)

    def funnel(self, measure: str = "", title: str = "Meta-analysis", ax=None):
        """Contour-enhanced funnel plot (:func:`tpsynth.figures.funnel.funnel_figure`, with the
        trim-and-fill studies when k >= 10, as in the pipeline).  Without ``ax``, returns a new
        Figure; with ``ax``, draws into it (title as the axes title, legend inside, no caption) and
        returns ``ax``.  A meta-regression raises ValueError pointing to :meth:`bubble`."""
        from .figures.funnel import funnel_figure

        self._not_a_regression("funnel")
        return funnel_figure(self._analysis(measure, title, "Intervention", "Comparator"), ax=ax)

    def bubble(self, moderator: str, measure: str = "", title: str = "Meta-regression", ax=None):
        """Bubble plot on a continuous moderator (:func:`tpsynth.figures.bubble.bubble_figure`,
        metafor ``regplot``).  Without ``ax``, returns a new Figure; with ``ax``, draws into it and
        returns ``ax``."""
        from .figures.bubble import bubble_figure

        if self.p == 1:
            raise ValueError("bubble() needs a meta-regression (mods=...)")
        return bubble_figure(self._analysis(measure, title, "Intervention", "Comparator"), moderator, ax=ax)

    # ----------------------------------------------------------------- printing
    def summary(self, digits: int = 4) -> str:
        """A readable printout in the layout of metafor's ``print.rma``."""

        def f(x):
            return "NA" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"

        def fp(x):
            if not np.isfinite(x):
                return "NA"
            return "<.0001" if x < 1e-4 else f"{x:.{digits}f}"

        kind = "Fixed-Effects" if self.method == "FE" else "Random-Effects"
        if self.p > 1:
            kind = "Mixed-Effects" if self.method != "FE" else "Fixed-Effects with Moderators"
        lines = [f"{kind} Model (k = {self.k}; tau^2 estimator: {self.method})", ""]
        if self.method != "FE":
            lead = "residual heterogeneity" if self.p > 1 else "total heterogeneity"
            lines.append(f"tau^2 (estimated amount of {lead}): {f(self.tau2)}")
            lines.append(f"I^2 ({lead} / unaccounted variability): {self.i2:.2f}%")
            lines.append(f"H^2 (unaccounted variability / sampling variability): {self.h2:.2f}")
            if self.p > 1 and np.isfinite(self.r2):
                lines.append(f"R^2 (amount of heterogeneity accounted for): {self.r2:.2f}%")
            lines.append("")
        name = "Test for Residual Heterogeneity" if self.p > 1 else "Test for Heterogeneity"
        q = "QE" if self.p > 1 else "Q"
        lines += [f"{name}:", f"{q}(df = {self.qe_df}) = {f(self.qe)}, p-val = {fp(self.qe_pvalue)}", ""]
        if self.p > 1:
            if np.isfinite(self.qm_df2):
                lines.append(f"Test of Moderators (coefficients 2:{self.p}):")
                lines.append(f"F(df1 = {self.qm_df}, df2 = {int(self.qm_df2)}) = {f(self.qm)}, p-val = {fp(self.qm_pvalue)}")
            else:
                lines.append(f"Test of Moderators (coefficients 2:{self.p}):")
                lines.append(f"QM(df = {self.qm_df}) = {f(self.qm)}, p-val = {fp(self.qm_pvalue)}")
            lines.append("")
        stat = "tval" if np.isfinite(self.df) else "zval"
        lines.append("Model Results:")
        lines.append("")
        table = self.to_frame()
        width = max(len(t) for t in self.terms) + 2
        head = f"{'':{width}}{'estimate':>10}{'se':>10}{stat:>10}{'pval':>10}{'ci.lb':>10}{'ci.ub':>10}"
        if np.isfinite(self.df):
            head = head.replace(f"{stat:>10}", f"{stat:>10}{'df':>6}")
        lines.append(head)
        for _, r in table.iterrows():
            row = f"{r['term']:{width}}{f(r['estimate']):>10}{f(r['se']):>10}{f(r['statistic']):>10}"
            if np.isfinite(self.df):
                row += f"{int(self.df):>6}"
            row += f"{fp(r['pvalue']):>10}{f(r['ci_low']):>10}{f(r['ci_high']):>10}"
            lines.append(row)
        if self.p == 1 and self.method != "FE":
            lines += ["", f"Prediction interval: {f(self.pi_low)} to {f(self.pi_high)}"]
        for n in self.notes:
            lines.append(f"Note: {n}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _unique_permutations(labels: np.ndarray) -> list[tuple[int, ...]]:
    """All distinct orderings of a multiset of labels (k!/prod(n_c!) of them), in lexicographic order."""
    counts = np.bincount(labels).tolist()
    k = len(labels)
    out: list[tuple[int, ...]] = []
    cur: list[int] = []

    def rec():
        if len(cur) == k:
            out.append(tuple(cur))
            return
        for c, n in enumerate(counts):
            if n:
                counts[c] -= 1
                cur.append(c)
                rec()
                cur.pop()
                counts[c] += 1

    rec()
    return out


def _fit(yi, vi, X, terms, coding, slab, method, ci, level) -> MetaAnalysis:
    y, v = pooling._check_inputs(yi, vi)
    k = y.size
    if k == 0:
        raise ValueError("at least one study is needed")
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    if p > 1:
        if k < p or (k == p and method != "FE"):
            what = f"{p} coefficients" + (" and tau²" if method != "FE" else "")
            raise ValueError(f"{k} studies cannot estimate {what} (as metafor: more studies than coefficients needed)")
        if np.linalg.matrix_rank(X) < p:
            raise ValueError(f"the moderators are collinear (design matrix of rank < {p}): {', '.join(terms[1:])}")
    out = pooling.pool_many(y, v, np.zeros(k, dtype=np.intp), method, ci, level, n_groups=1,
                            X=None if p == 1 else X)  # fmt: skip
    notes = list(pooling._result_from(out, 0, slice(None), method).notes) if p == 1 else []
    if p > 1:
        if not out["converged"][0]:
            notes.append(f"{method} did not converge; fell back to DL")
        if out["step_halved"][0]:
            notes.append(f"{method} Fisher scoring oscillated; converged with half steps (metafor control stepadj=0.5)")
        if out["tau2_ci_capped"][0]:
            notes.append("upper Q-profile bound of tau² reached the search limit: the true bound is larger")

    def s(key):
        return float(out[key][0])

    return MetaAnalysis(
        yi=_readonly(y), vi=_readonly(v), X=_readonly(X), terms=tuple(terms), coding=tuple(coding),
        slab=tuple(str(x) for x in slab), method_requested=method, ci_requested=ci, level=float(level),
        method=str(out["method"][0]), ci_method=str(out["ci_method"][0]), k=k, p=p,
        beta=_readonly(out["beta"][0]), se=_readonly(out["se_beta"][0]), zval=_readonly(out["zval"][0]),
        pval=_readonly(out["pval_beta"][0]), ci_low=_readonly(out["ci_low_beta"][0]),
        ci_high=_readonly(out["ci_high_beta"][0]), vb=_readonly(out["vb"][0]), df=float(out["df"][0]),
        tau2=s("tau2"), tau2_ci_low=s("tau2_ci_low"), tau2_ci_high=s("tau2_ci_high"),
        tau2_ci_capped=bool(out["tau2_ci_capped"][0]), i2=s("i2"), i2_ci_low=s("i2_ci_low"),
        i2_ci_high=s("i2_ci_high"), h2=s("h2"), qe=s("q"), qe_df=int(out["q_df"][0]), qe_pvalue=s("q_pvalue"),
        qm=s("qm"), qm_df=int(out["qm_df"][0]), qm_df2=s("qm_df2"), qm_pvalue=s("qm_pvalue"), r2=s("r2"),
        pi_low=s("pi_low"), pi_high=s("pi_high"), fe_estimate=s("fe_estimate"), fe_se=s("fe_se"),
        fe_ci_low=s("fe_ci_low"), fe_ci_high=s("fe_ci_high"), weights=_readonly(out["weights"]),
        converged=bool(out["converged"][0]), step_halved=bool(out["step_halved"][0]), notes=tuple(notes),
    )  # fmt: skip


def meta_analysis(yi, vi, mods=None, data=None, method: str = "REML", ci: str = "hksj", level: float = 0.95,
                  reference: dict | None = None, slab=None, names=None) -> MetaAnalysis:  # fmt: skip
    """Fit a random-effects meta-analysis or mixed-effects meta-regression (metafor ``rma``).

    Parameters
    ----------
    yi, vi : array_like or str
        Effect sizes and sampling variances (> 0), or column names of ``data``.
    mods : array_like, DataFrame or list of str, optional
        Moderators (see the module docstring); default intercept only.
    data : pandas.DataFrame, optional
        Where column names are looked up.
    method : str
        tau^2 estimator: REML, ML, DL, PM, HE, SJ, EB or FE (see :mod:`tpsynth.pooling`).
    ci : str
        ``"wald"``, ``"hksj"`` or ``"hksj_adhoc"`` (metafor ``test = "z"``, ``"knha"``, ``"adhoc"``).
    level : float
        Confidence level.
    reference : dict, optional
        Reference level per factor moderator.
    slab : sequence of str, optional
        Study labels (default 1..k).
    names : sequence of str, optional
        Names of the columns of an array ``mods``.

    Returns
    -------
    MetaAnalysis
    """
    if data is not None:
        yi = data[yi].to_numpy(dtype=float) if isinstance(yi, str) else yi
        vi = data[vi].to_numpy(dtype=float) if isinstance(vi, str) else vi
    y = np.asarray(yi, dtype=float).ravel()
    X, terms, coding = design_matrix(mods, data, reference, names, k=y.size)
    if X.shape[0] != y.size:
        raise ValueError(f"mods has {X.shape[0]} rows for {y.size} studies")
    slab = tuple(str(i + 1) for i in range(y.size)) if slab is None else tuple(str(s) for s in slab)
    if len(slab) != y.size:
        raise ValueError("slab must have one label per study")
    return _fit(y, vi, X, terms, coding, slab, method, ci, level)
