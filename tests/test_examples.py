"""examples/bcg.py runs and reproduces the published metafor analysis of the BCG trials.

Published values: Viechtbauer W (2010). Conducting meta-analyses in R with the metafor package.
J Stat Softw 36(3):1-48, section 3 (data: Colditz et al. 1994, JAMA 271:698-702 = metadat::dat.bcg):
random effects (REML) log RR -0.7145 (SE 0.1798), tau² 0.3132, I² 92.22%; with absolute latitude,
intercept 0.2515 (SE 0.2491), slope -0.0291 (SE 0.0072), residual tau² 0.0764, R² 75.62%.
They are printed to 4 decimals at metafor's default REML convergence threshold (1e-5); tpsynth iterates
to 1e-12 (metafor with threshold 1e-12 gives tau² 0.0763480 and R² 75.6266, as tpsynth does:
tests/test_meta.py), hence the absolute tolerances below.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bcg")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "bcg.py"), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def coefficients(path: Path) -> dict[str, dict[str, float]]:
    with path.open(encoding="utf-8") as fh:
        return {r["term"]: {k: float(v) for k, v in r.items() if k != "term"} for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_random_effects_model_as_published(run):
    out, stdout = run
    c = coefficients(out / "bcg_random_effects.csv")["intrcpt"]
    assert c["estimate"] == pytest.approx(-0.7145, abs=5e-5)
    assert c["se"] == pytest.approx(0.1798, abs=5e-5)
    assert "tau^2 (estimated amount of total heterogeneity): 0.3132" in stdout
    assert "I^2 (total heterogeneity / unaccounted variability): 92.22%" in stdout
    assert "Pooled risk ratio 0.49 (95% CI 0.34 to 0.70)" in stdout


@pytest.mark.slow
def test_meta_regression_on_latitude_as_published(run):
    out, stdout = run
    c = coefficients(out / "bcg_meta_regression.csv")
    assert c["intrcpt"]["estimate"] == pytest.approx(0.2515, abs=1e-4)
    assert c["intrcpt"]["se"] == pytest.approx(0.2491, abs=1e-4)
    assert c["ablat"]["estimate"] == pytest.approx(-0.0291, abs=5e-5)
    assert c["ablat"]["se"] == pytest.approx(0.0072, abs=5e-5)
    tau2 = float(stdout.split("tau^2 (estimated amount of residual heterogeneity): ")[1].split()[0])
    r2 = float(stdout.split("R^2 (amount of heterogeneity accounted for): ")[1].split("%")[0])
    assert tau2 == pytest.approx(0.0764, abs=1e-4) and r2 == pytest.approx(75.62, abs=0.01)


@pytest.mark.slow
def test_figures_written_in_three_formats(run):
    out, _ = run
    for stem in ("bcg_forest", "bcg_bubble_ablat", "bcg_forest_funnel"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert "<svg" in (out / f"{stem}.svg").read_text(encoding="utf-8")
