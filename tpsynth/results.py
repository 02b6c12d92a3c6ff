"""Typed result of one analysis: frozen dataclasses for ``results/analyses/{analysis_id}.json``.

:func:`tpsynth.analysis.run_analysis` and :meth:`tpsynth.meta.MetaAnalysis.forest` produce an
:class:`AnalysisResult`; the pipeline writes it with :meth:`AnalysisResult.to_json`, and the figures
and the report read it back with :meth:`AnalysisResult.from_json` and use its attributes.

>>> from tpsynth.results import AnalysisResult
>>> res = AnalysisResult.from_json("results/analyses/pain_smd.json")    # doctest: +SKIP
>>> res.pooled.estimate, res.pooled.ci_low, res.pooled.certainty          # doctest: +SKIP

Layout (the JSON schema ``workflow/schemas/analysis_result.schema.yaml`` is its contract): ratio
measures (RR, OR) on the log scale, I² in percent, study weights in percent. A number that does not
exist for a result (no tau² for a common-effect, Mantel-Haenszel or Peto model, no Q for a single
study) is ``None``. Some keys are left out of the JSON when the result has no such part, exactly as
the files have always been written (e.g. nothing but the count and the certainty when no study
could be pooled); each class's ``_absent`` says which.

:meth:`AnalysisResult.from_dict` checks every field against its type and raises
:class:`ResultFormatError` naming the file and the field (``pooled.certainty``,
``studies[3].yi``) when a file does not fit, e.g. a stale file written by an older version.
Sequences are tuples (the objects are immutable); mappings that echo the configuration or the sheets
(``settings.bayes``, ``studies[i].side_stats``, ``arms_text``) stay dicts.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "AnalysisResult", "ArmsText", "BayesResult", "BayesSummary", "BayesSensitivity", "BayesStudy", "Brief", "BubbleData", "Caveats",
    "Coefficient", "FlowRow", "Labels", "MetaRegression", "Outcome", "Pooled", "ResultFormatError", "RiskOfBias",
    "RobDomain", "Sensitivity", "Settings", "SmallStudy", "SmdInPoints", "Study", "Subgroup", "SubgroupRegression",
]  # fmt: skip


class ResultFormatError(ValueError):
    """A result file (or dict) that does not fit :class:`AnalysisResult`; the message names the file and field."""


# ---------------------------------------------------------------------------------------------- machinery


def _type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        return "a list"
    return {float: "number", int: "integer", bool: "true or false", str: "text"}.get(tp) or getattr(tp, "__name__", str(tp))


class _Record:
    """Base of the result dataclasses: ``to_dict`` / ``from_dict`` driven by the field types."""

    #: keys the JSON object may carry beyond the fields (kept in ``extra``); False: unknown keys are an error
    _open: ClassVar[bool] = False

    def _absent(self) -> set[str]:
        """Fields left out of the JSON for this instance (a part the result does not have)."""
        return set()

    def to_dict(self) -> dict:
        """The JSON object (plain dicts, lists, numbers, strings, None) of the output contract."""
        skip = self._absent()
        get = self.__dict__
        out = {n: _dump(get[n]) for n in _names(type(self)) if n not in skip}
        if self._open:
            out.update(_dump(dict(self.extra)))
        return out

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "result"):
        """Build from a JSON object; :class:`ResultFormatError` naming ``source`` and the field if it does not fit."""
        try:
            return _loader(cls)(data)
        except _Misfit as err:
            where = "".join(err.path[::-1]).lstrip(".") or cls.__name__
            raise ResultFormatError(f"{source}: field {where}{err.message}") from None


class _Misfit(Exception):
    """A value that does not fit its field; ``path`` collects the field names on the way out."""

    def __init__(self, message: str):
        self.message = message
        self.path: list[str] = []


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _misfit(expected: str, v) -> _Misfit:
    return _Misfit(f": expected {expected}, got {_short(v)}")


@functools.cache
def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name != "extra")


_SCALARS = (str, int, float, bool, type(None))


def _dump(v):
    if type(v) in _SCALARS:
        return v
    if isinstance(v, _Record):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_dump(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _dump(x) for k, x in v.items()}
    return v


@functools.cache
def _loader(tp):
    """A function checking a value from JSON against the annotation ``tp`` (built once per type): lists
    become tuples, objects their record classes; numbers keep their type (an int stays an int, so the
    JSON is written back byte for byte). It raises :class:`_Misfit` when the value does not fit."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [_loader(a) for a in typing.get_args(tp) if a is not type(None)]
        nullable = type(None) in typing.get_args(tp)

        def union(v):
            if v is None:
                if nullable:
                    return None
                raise _misfit(_type_name(tp), v)
            for i, load in enumerate(inner):
                try:
                    return load(v)
                except _Misfit:
                    if i == len(inner) - 1:
                        raise
            raise AssertionError("unreachable")

        return union
    if isinstance(tp, type) and issubclass(tp, _Record):
        return _record_loader(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _loader(args[0])

            def seq(v):
                if not isinstance(v, (list, tuple)):
                    raise _misfit(_type_name(tp), v)
                out = []
                for i, x in enumerate(v):
                    try:
                        out.append(item(x))
                    except _Misfit as err:
                        err.path.append(f"[{i}]")
                        raise
                return tuple(out)

            return seq
        items = [_loader(a) for a in args]

        def fixed(v):
            if not isinstance(v, (list, tuple)) or len(v) != len(items):
                raise _misfit(_type_name(tp), v)
            return tuple(load(x) for load, x in zip(items, v, strict=True))

        return fixed
    if origin in (dict, Mapping) or tp in (dict, Mapping):

        def mapping(v):
            if not isinstance(v, Mapping):
                raise _misfit("an object", v)
            return dict(v)

        return mapping
    if tp is Any:
        return lambda v: v
    checks = {
        float: ("number", lambda v: type(v) is float or isinstance(v, (int, float)) and not isinstance(v, bool)),
        int: ("integer", lambda v: type(v) is int or isinstance(v, int) and not isinstance(v, bool)),
        bool: ("true or false", lambda v: type(v) is bool),
        str: ("text", lambda v: type(v) is str or isinstance(v, str)),
    }
    if tp not in checks:
        raise TypeError(f"no loader for {tp!r}")  # a programming error in this module
    expected, ok = checks[tp]

    def scalar(v):
        if ok(v):
            return v
        raise _misfit(expected, v)

    return scalar


def _record_loader(cls):
    hints = typing.get_type_hints(cls)
    fs = [f for f in fields(cls) if f.name != "extra"]
    loads = [(f.name, _loader(hints[f.name])) for f in fs]
    names = frozenset(f.name for f in fs)
    required = [f.name for f in fs if f.default is MISSING and f.default_factory is MISSING]

    def record(data):
        if not isinstance(data, Mapping):
            raise _misfit("an object", data)
        kw: dict[str, Any] = {}
        if not names.issuperset(data):
            unknown = sorted(set(data) - names)
            if not cls._open:
                err = _Misfit(": not part of an analysis result (written by another version of tpsynth? run the pipeline again)")
                err.path.append(f".{unknown[0]}")
                raise err
            kw["extra"] = {k: data[k] for k in unknown}
        for name, load in loads:
            if name in data:
                try:
                    kw[name] = load(data[name])
                except _Misfit as err:
                    err.path.append(f".{name}")
                    raise
        for name in required:
            if name not in kw:
                err = _Misfit(" missing (a file from an older version of tpsynth? run the pipeline again)")
                err.path.append(f".{name}")
                raise err
        return cls(**kw)

    return record


_rec = dataclass(frozen=True, kw_only=True)
Num = float | None


# ---------------------------------------------------------------------------------------------- parts


@_rec
class Settings(_Record):
    """The analysis's settings with the config defaults filled (config/README.md, ``analyses:``).

    Settings the configuration does not set are ``None`` and left out of the JSON; keys this class
    does not name (a newer config option) are kept in ``extra``.
    """

    _open: ClassVar[bool] = True
    title: str
    measure: str
    method: str | None = None
    ci: str | None = None
    level: float = 0.95
    outcome: str | None = None
    intervention: tuple[str, ...] = ()
    comparator: tuple[str, ...] = ()
    timepoint_weeks: tuple[float, ...] | None = None
    timepoint_rule: str | None = None
    randomised_only: bool | None = None
    intervention_label: str | None = None
    comparator_label: str | None = None
    subgroup: str | None = None
    subgroup_model: str | None = None
    moderators: tuple[str, ...] | None = None
    moderator_reference: Mapping[str, Any] | None = None
    where: Mapping[str, Any] | None = None
    bayes: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _absent(self):
        return {f.name for f in fields(self) if getattr(self, f.name) is None}


@_rec
class Outcome(_Record):
    """The outcome's configuration (``outcomes:``); ``higher_is_better`` None: direction unknown."""

    _open: ClassVar[bool] = True
    label: str
    type: str | None = None
    higher_is_better: bool | None = False  # the config's default
    mid: float | None = None
    reference_scale: tuple[float, float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def _absent(self):
        return {n for n in ("type", "mid", "reference_scale") if getattr(self, n) is None}


@_rec
class Labels(_Record):
    """Display labels of the interventions on each side."""

    intervention: tuple[str, ...]
    comparator: tuple[str, ...]


@_rec
class FlowRow(_Record):
    """What became of one sheet row of the analysis's outcome and sides."""

    sheet: str
    line: int
    state: str
    reason: str


_POOLED_FIT = (
    "estimate", "se", "ci_low", "ci_high", "pvalue", "pi_low", "pi_high", "tau2", "tau2_ci_low", "tau2_ci_high",
    "i2", "i2_ci_low", "i2_ci_high", "h2", "q", "q_df", "q_pvalue", "fe_estimate", "fe_se", "fe_ci_low",
    "fe_ci_high", "q_between", "q_between_df", "q_between_pvalue", "method", "method_requested", "ci_method",
    "converged", "tau2_ci_capped",
)  # fmt: skip


@_rec
class Pooled(_Record):
    """The pooled estimate, its heterogeneity and its GRADE certainty (``pooled`` of the JSON).

    Estimates on the analysis scale (log for RR and OR). ``tau2_ci_capped`` is True when the upper
    Q-profile bound of tau² stopped at the search limit (so it is a lower bound; Viechtbauer 2007,
    Stat Med 26:37). ``fe_*`` is the common-effect (inverse-variance) estimate; Mantel-Haenszel and
    Peto (``method`` MH / PETO) leave tau², its CI, the I² CI and the prediction interval None. For a
    single study (``method`` "single study") its own estimate is reported, not pooled. With k = 0
    only the count, the measure and the certainty exist.
    """

    k: int
    measure: str
    n_participants: Num = None  # None: not known (a fit object made from yi and vi)
    estimate: Num = None
    se: Num = None
    ci_low: Num = None
    ci_high: Num = None
    pvalue: Num = None
    pi_low: Num = None
    pi_high: Num = None
    tau2: Num = None
    tau2_ci_low: Num = None
    tau2_ci_high: Num = None
    tau2_ci_capped: bool | None = None
    i2: Num = None
    i2_ci_low: Num = None
    i2_ci_high: Num = None
    h2: Num = None
    q: Num = None
    q_df: int | None = None
    q_pvalue: Num = None
    fe_estimate: Num = None
    fe_se: Num = None
    fe_ci_low: Num = None
    fe_ci_high: Num = None
    q_between: Num = None
    q_between_df: int | None = None
    q_between_pvalue: Num = None
    method: str | None = None
    method_requested: str | None = None
    ci_method: str | None = None
    converged: bool | None = None
    notes: tuple[str, ...] = ()
    certainty: str | None = None
    certainty_reasons: str | None = None
    ois: Num = None
    n_over_ois: Num = None
    small_trial_weight: Num = None
    largest_weight: Num = None
    high_rob_weight: Num = None
    derived_weight: Num = None
    low_confidence_weight: Num = None
    off_target_weight: Num = None
    ci_crosses_null: bool | None = None
    ci_crosses_mid: bool | None = None

    def _absent(self):
        if self.k == 0:
            return set(_POOLED_FIT)
        return {"tau2_ci_capped"} if self.method == "single study" else set()

    @property
    def single(self) -> bool:
        """One study: reported as is, not pooled."""
        return self.k == 1 or str(self.method or "").lower().startswith("single")


@_rec
class RobDomain(_Record):
    """One risk-of-bias domain judgement (RoB 2 / ROBINS-I, ``risk_of_bias.csv``)."""

    domain: str
    name: str
    judgement: str
    level: str
    support: str | None = None


@_rec
class RiskOfBias(_Record):
    """A study's risk of bias for the outcome (:func:`tpsynth.rob.study_judgement`)."""

    level: str
    tool: str | None
    overall: str | None
    domains: tuple[RobDomain, ...]
    source: str
    overall_derived: bool = False
    overall_flag: str | None = None


@_rec
class ArmsText(_Record):
    """Each side's arm statistics as the forest plot prints them (``mean (SD), n`` or ``events/n``);
    both None for a reported contrast."""

    intervention: str | None = None
    comparator: str | None = None

    def _absent(self):
        return {n for n in ("intervention", "comparator") if getattr(self, n) is None}


@_rec
class Study(_Record):
    """One study's effect (``yi``, sampling variance ``vi``), its CI, weight (%) and description."""

    study_id: str
    yi: float
    vi: float
    ci_low: float
    ci_high: float
    weight: float
    source: str
    author: str | None = None
    year: int | None = None
    n_intervention: Num = None
    n_comparator: Num = None
    timepoint_weeks: Num = None
    instrument: str | None = None
    derived: bool = False
    low_confidence: bool = False
    rob_overall: str | None = None
    rob: RiskOfBias | None = None
    region: str | None = None
    design: str | None = None
    arms_text: ArmsText = field(default_factory=ArmsText)
    notes: tuple[str, ...] = ()
    comparator_sd_ref: Num = None
    comparator_risk: Num = None
    side_stats: Mapping[str, Any] | None = None
    scale_factor: Num = None
    sign: Num = None
    extraction_confidence: str | None = None
    subgroup: str | float | bool | None = None


@_rec
class Brief(_Record):
    """A pooled estimate of a subset of the studies."""

    k: int
    estimate: Num = None
    ci_low: Num = None
    ci_high: Num = None
    tau2: Num = None
    i2: Num = None


@_rec
class Subgroup(Brief):
    """One subgroup's pooled estimate (``subgroup`` is the value of the studies.csv ``column``)."""

    subgroup: str
    column: str
    se: Num = None


@_rec
class Sensitivity(Brief):
    """Leave-one-out (without ``study_id``), cumulative (up to ``study_id``, by year) or without
    high risk of bias / low extraction confidence (``study_id`` lists those left out)."""

    kind: str
    study_id: str


@_rec
class SmallStudy(_Record):
    """Egger's regression test and trim-and-fill (Duval & Tweedie 2000) when k >= 10, else the reason."""

    k: int
    skipped_reason: str | None = None
    egger_stat: Num = None
    egger_pvalue: Num = None
    trimfill_k0: int | None = None
    trimfill_side: str | None = None
    trimfill_estimate: Num = None
    trimfill_ci_low: Num = None
    trimfill_ci_high: Num = None
    trimfill_filled_yi: tuple[float, ...] = ()
    trimfill_filled_vi: tuple[float, ...] = ()

    def _absent(self):
        full = {"trimfill_side", "trimfill_ci_low", "trimfill_ci_high", "trimfill_filled_yi", "trimfill_filled_vi"}
        if self.k == 0:
            return full | {"egger_stat", "egger_pvalue", "trimfill_k0", "trimfill_estimate"}
        return full if self.skipped_reason is not None else set()


@_rec
class Coefficient(_Record):
    """One meta-regression coefficient (metafor ``rma(mods = ...)``): z with Wald, t with HKSJ."""

    term: str
    estimate: Num
    se: Num
    statistic: Num
    pvalue: Num
    ci_low: Num
    ci_high: Num


@_rec
class BubbleData(_Record):
    """Points and fitted line of a bubble plot on one continuous moderator (metafor ``regplot``)."""

    moderator: str
    x: tuple[float, ...]
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    weights: tuple[float, ...]
    study_id: tuple[str, ...]
    grid: tuple[float, ...]
    pred: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    slope: float
    slope_pvalue: float


_METAREG_FIT = (
    "k", "p", "terms", "method", "ci_method", "reference_levels", "coefficients", "tau2", "i2", "r2", "qm", "qm_df",
    "qm_df2", "qm_pvalue", "qe", "qe_df", "qe_pvalue", "permutation_pvalue", "permutation_exact", "permutation_iter",
    "permutation_seed", "bubble",
)  # fmt: skip


@_rec
class MetaRegression(_Record):
    """Mixed-effects meta-regression on the configured moderators (metafor ``rma.uni(mods = ...)``).

    QM is the omnibus test of the moderators (chi² on ``qm_df`` with Wald; F(``qm_df``, ``qm_df2``)
    with HKSJ), QE the residual heterogeneity, ``r2`` the pseudo R² (Raudenbush 2009), and
    ``permutation_pvalue`` metafor's ``permutest`` p-value of QM. When it could not be fitted only
    ``moderators``, ``notes``, ``caveat`` and ``skipped_reason`` exist.
    """

    moderators: tuple[str, ...]
    notes: tuple[str, ...] = ()
    caveat: str | None = None
    skipped_reason: str | None = None
    k: int | None = None
    p: int | None = None
    terms: tuple[str, ...] = ()
    method: str | None = None
    ci_method: str | None = None
    reference_levels: Mapping[str, Any] = field(default_factory=dict)
    coefficients: tuple[Coefficient, ...] = ()
    tau2: Num = None
    i2: Num = None
    r2: Num = None
    qm: Num = None
    qm_df: int | None = None
    qm_df2: Num = None
    qm_pvalue: Num = None
    qe: Num = None
    qe_df: int | None = None
    qe_pvalue: Num = None
    permutation_pvalue: Num = None
    permutation_exact: bool | None = None
    permutation_iter: int | None = None
    permutation_seed: int | None = None
    bubble: tuple[BubbleData, ...] = ()

    def _absent(self):
        return set(_METAREG_FIT) if self.skipped_reason is not None else set()


@_rec
class SubgroupRegression(MetaRegression):
    """With ``subgroup_model: common_tau2``: the meta-regression on the subgroup factor (metafor
    ``rma(yi, vi, mods = ~ factor(subgroup))``) whose predictions are the subgroup estimates and whose
    QM is the test for subgroup differences. No bubble plot (a factor)."""

    def _absent(self):
        return super()._absent() | {"bubble"}


@_rec
class BayesStudy(_Record):
    """A study's shrunken (posterior) estimate."""

    study_id: str
    median: float
    mean: float
    sd: Num
    ci_low: float
    ci_high: float


@_rec
class BayesResult(_Record):
    """Summary of a Bayesian random-effects analysis (:func:`tpsynth.bayes.summarise`; Röver 2020, J Stat
    Softw 93(6), bayesmeta), on the analysis scale (log for ratios): posterior median ``estimate`` with the
    equal-tailed credible interval, the shortest interval (``hdi_*``), the posterior predictive interval of
    a new study's true effect (``pi_*``), tau, P(benefit) and P(important benefit beyond ``mid``) (None
    when the outcome's direction is not set), and the shrunken study estimates. ``sd`` is None when the
    posterior SD is infinite."""

    k: int
    tau_prior: str
    tau_prior_source: str
    mu_prior: str
    estimate: float
    mean: float
    sd: Num
    ci_low: float
    ci_high: float
    hdi_low: float
    hdi_high: float
    pi_low: float
    pi_high: float
    tau_median: float
    tau_ci_low: float
    tau_ci_high: float
    prob_benefit: Num
    prob_important_benefit: Num
    mid: Num
    studies: tuple[BayesStudy, ...]


@_rec
class BayesSummary(BayesResult):
    """The Bayesian result of an analysis: :class:`BayesResult` and whether the report leads with it
    (``headline``: fewer studies than ``headline_below_k``)."""

    headline_below_k: int
    headline: bool


@_rec
class BayesSensitivity(_Record):
    """The Bayesian analysis under another tau prior, or the frequentist REML result (``prior`` "none")."""

    prior: str
    kind: str
    estimate: Num
    ci_low: Num
    ci_high: Num
    tau_median: Num
    prob_benefit: Num
    prob_important_benefit: Num


@_rec
class Caveats(_Record):
    """The caveats of one analysis: inputs of the automatic GRADE rating (:func:`tpsynth.certainty.compute_caveats`,
    each explained by :func:`tpsynth.certainty.caveat_sentences`); shares of weight in 0-1."""

    k: int
    n: float
    ois: Num
    n_over_ois: Num
    representative_sd: Num
    comparator_risk: Num
    small_trial_weight: float
    largest_weight: float
    ci_crosses_null: bool | None
    ci_crosses_mid: bool | None
    mid_on_analysis_scale: Num
    high_rob_weight: float
    not_assessed_weight: float
    derived_weight: float
    low_confidence_weight: float
    off_target_weight: float
    some_concerns_weight: float = 0.0  # weight at some concerns (RoB 2) / moderate or no information (ROBINS-I)
    #: ((domain label, weight share judged high in it), ...), with domain data only
    rob_domains_high: tuple[tuple[str, float], ...] = ()


@_rec
class SmdInPoints(_Record):
    """A standardised mean difference re-expressed in points of a reference scale (Cochrane Handbook 15.5.4)."""

    sd: float
    estimate: float
    ci_low: float
    ci_high: float
    scale: tuple[float, float] | None = None  # the outcome's reference scale
    mid: Num = None  # its minimal important difference, in points


# ---------------------------------------------------------------------------------------------- the result


@_rec
class AnalysisResult(_Record):
    """The result of one analysis (``results/analyses/{analysis_id}.json``).

    Built by :func:`tpsynth.analysis.run_analysis` (and, for a fit object's plots, by
    :meth:`tpsynth.meta.MetaAnalysis.forest`); the figures and the report read it. GRADE certainty
    (Guyatt et al. 2008, BMJ 336:924) is ``pooled.certainty`` with ``pooled.certainty_reasons``,
    its inputs ``caveats`` and their sentences ``caveat_sentences``.
    """

    analysis_id: str
    settings: Settings
    outcome: Outcome
    labels: Labels
    pooled: Pooled
    studies: tuple[Study, ...] = ()
    subgroups: tuple[Subgroup, ...] = ()
    sensitivity: tuple[Sensitivity, ...] = ()
    small_study: SmallStudy | None = None
    flow: tuple[FlowRow, ...] = ()
    notes: tuple[str, ...] = ()
    caveats: Caveats | None = None
    caveat_sentences: tuple[str, ...] = ()
    plain_language: str = ""
    smd_in_points: SmdInPoints | None = None
    imprecision_judged_on: str | None = None
    meta_regression: MetaRegression | None = None
    subgroup_regression: SubgroupRegression | None = None
    bayes: BayesSummary | None = None
    bayes_note: str | None = None
    bayes_sensitivity: tuple[BayesSensitivity, ...] = ()
    evidence_sha256: str | None = None

    def _absent(self):
        out = set()
        if self.evidence_sha256 is None:
            out.add("evidence_sha256")  # run_analysis alone; the pipeline adds it
        if self.pooled.k == 0:
            out.add("meta_regression")
        if self.subgroup_regression is None:
            out.add("subgroup_regression")  # only with subgroup_model common_tau2
        return out

    @property
    def measure(self) -> str:
        """The effect measure (MD, SMD, RR, OR, RD)."""
        return self.pooled.measure or self.settings.measure

    @property
    def level(self) -> float:
        """Confidence level of the intervals (0.95)."""
        return self.settings.level

    @property
    def title(self) -> str:
        return self.settings.title or self.analysis_id

    def with_evidence(self, sha256: str) -> AnalysisResult:
        """The same result carrying the SHA-256 of the evidence slice it was computed from."""
        return replace(self, evidence_sha256=sha256)

    def to_json(self, path: str | Path | None = None) -> str:
        """Sorted, indented JSON (no NaN) of :meth:`to_dict`; written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
        if path is not None:
            from .tables import write_text

            write_text(path, text)
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> AnalysisResult:
        """Read ``results/analyses/{id}.json``; :class:`ResultFormatError` naming the file and field if it does not fit."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ResultFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        return cls.from_dict(data, source=str(path))
