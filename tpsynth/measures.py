"""Effect measures: which are ratios (pooled on the log scale) and how they are named."""

RATIO_MEASURES = frozenset({"RR", "OR"})
DICHOTOMOUS_MEASURES = frozenset({"RR", "OR", "RD"})

#: Names in running text (report, methods).
MEASURE_NAMES = {
    "MD": "mean difference",
    "SMD": "standardised mean difference (Hedges' g)",
    "RR": "risk ratio",
    "OR": "odds ratio",
    "RD": "risk difference",
}

#: Shorter names where space is tight (figure headings).
SHORT_NAMES = {**MEASURE_NAMES, "SMD": "std. mean difference (Hedges' g)"}


def heading(measure: str) -> str:
    """The short name with a capital first letter, for figure headings."""
    name = SHORT_NAMES.get(measure, measure)
    return name[:1].upper() + name[1:]
