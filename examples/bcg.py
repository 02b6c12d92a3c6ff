"""Pool a published data set with the Python API: the BCG vaccine trials (Colditz et al. 1994).

Thirteen trials of the BCG vaccine against tuberculosis, as tabulated by Colditz GA, Brewer TF,
Berkey CS, et al. Efficacy of BCG vaccine in the prevention of tuberculosis: meta-analysis of the
published literature. JAMA 1994;271(9):698-702; the same counts are R's ``metadat::dat.bcg``
(``tpos``/``tneg``: vaccinated with/without tuberculosis, ``cpos``/``cneg``: not vaccinated, ``ablat``:
absolute latitude of the trial site in degrees). The effects are computed here from those 2x2 counts.

The script

1. computes each trial's log risk ratio and its variance (:func:`tpsynth.effect_sizes.log_risk_ratio`,
   metafor ``escalc(measure="RR")``);
2. fits a random-effects model (REML, Wald CI: metafor's ``rma(yi, vi)`` defaults) and prints its
   summary, then the same model with the HKSJ CI;
3. fits a meta-regression on absolute latitude (``rma(yi, vi, mods = ~ ablat)``) and prints it;
4. writes the forest plot and the bubble plot as PNG, SVG and PDF, and both coefficient tables as CSV;
5. draws the forest and the funnel plot side by side into two axes of one figure (``ax=``).

Viechtbauer (2010, J Stat Softw 36(3), section 3) fits these models with metafor: pooled log RR
-0.7145 (SE 0.1798), tau² 0.3132; with latitude, intercept 0.2515, slope -0.0291 per degree, tau²
0.0764, R² 75.62% (``tests/test_examples.py`` checks the script reproduces them).

Usage: ``python examples/bcg.py [OUTDIR]`` (default ``bcg-example/`` in the current directory).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tpsynth import meta_analysis
from tpsynth.effect_sizes import log_risk_ratio
from tpsynth.figures.common import save_all

# Colditz et al. 1994, Table 1 (= metadat::dat.bcg): author, year, tpos, tneg, cpos, cneg, ablat
TRIALS = [
    ("Aronson", 1948, 4, 119, 11, 128, 44),
    ("Ferguson & Simes", 1949, 6, 300, 29, 274, 55),
    ("Rosenthal et al", 1960, 3, 228, 11, 209, 42),
    ("Hart & Sutherland", 1977, 62, 13536, 248, 12619, 52),
    ("Frimodt-Moller et al", 1973, 33, 5036, 47, 5761, 13),
    ("Stein & Aronson", 1953, 180, 1361, 372, 1079, 44),
    ("Vandiviere et al", 1973, 8, 2537, 10, 619, 19),
    ("TPT Madras", 1980, 505, 87886, 499, 87892, 13),
    ("Coetzee & Berjak", 1968, 29, 7470, 45, 7232, 27),
    ("Rosenthal et al", 1961, 17, 1699, 65, 1600, 42),
    ("Comstock et al", 1974, 186, 50448, 141, 27197, 18),
    ("Comstock & Webster", 1969, 5, 2493, 3, 2338, 33),
    ("Comstock et al", 1976, 27, 16886, 29, 17825, 33),
]


def bcg_data() -> pd.DataFrame:
    """The trials with their log risk ratio ``yi`` and sampling variance ``vi``."""
    d = pd.DataFrame(TRIALS, columns=["author", "year", "tpos", "tneg", "cpos", "cneg", "ablat"])
    yi, vi, _, _ = log_risk_ratio(d.tpos, d.tpos + d.tneg, d.cpos, d.cpos + d.cneg)
    d["yi"], d["vi"] = np.asarray(yi), np.asarray(vi)
    d["study"] = d.author + " " + d.year.astype(str)
    return d


def main(out: Path) -> None:
    d = bcg_data()
    out.mkdir(parents=True, exist_ok=True)

    fit = meta_analysis("yi", "vi", data=d, method="REML", ci="wald", slab=d.study)  # rma(yi, vi)
    print("Random-effects model, REML, Wald CI (metafor: rma(yi, vi, data = dat))")
    print(fit.summary())
    print(f"\nPooled risk ratio {np.exp(fit.estimate):.2f} "
          f"(95% CI {np.exp(fit.ci_low[0]):.2f} to {np.exp(fit.ci_high[0]):.2f})")  # fmt: skip
    hksj = fit.refit(ci="hksj")
    print(f"With the HKSJ CI (test = \"knha\"): 95% CI {np.exp(hksj.ci_low[0]):.2f} to {np.exp(hksj.ci_high[0]):.2f}\n")

    reg = meta_analysis("yi", "vi", mods=["ablat"], data=d, method="REML", ci="wald", slab=d.study)
    print("Meta-regression on absolute latitude (metafor: rma(yi, vi, mods = ~ ablat, data = dat))")
    print(reg.summary())

    fit.to_frame().to_csv(out / "bcg_random_effects.csv", index=False)
    reg.to_frame().to_csv(out / "bcg_meta_regression.csv", index=False)
    forest = fit.forest(measure="RR", title="BCG vaccine and tuberculosis (Colditz et al. 1994)",
                        intervention="BCG vaccine", comparator="No vaccine")  # fmt: skip
    bubble = reg.bubble("ablat", measure="RR", title="BCG vaccine: risk ratio by absolute latitude")
    written = save_all(forest, out / "bcg_forest") + save_all(bubble, out / "bcg_bubble_ablat")

    # Forest and funnel plot side by side in one figure of your own: the same drawing code, into your axes
    # (the forest layout fills its axes; give it about the aspect of the stand-alone forest figure).
    panels = Figure(figsize=(16, 6.5))
    left, right = panels.subplots(1, 2, width_ratios=[1.75, 1])
    fit.forest(measure="RR", title="BCG vaccine and tuberculosis", intervention="BCG vaccine", comparator="No vaccine",
               ax=left)  # fmt: skip
    fit.funnel(measure="RR", title="BCG vaccine", ax=right)
    written += save_all(panels, out / "bcg_forest_funnel")
    print("\nWrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bcg-example"))
