"""How the pipeline's cost grows with the number of studies: time and peak memory of every stage.

For each size (default 1,000, 10,000 and 100,000 studies) a synthetic workspace is generated in a
temporary directory: ``studies.csv`` (one row per study), ``outcomes.csv`` (20 rows per study: two arms x
pain at 5 timepoints x mean/SD, and responders at 5 timepoints x events; 2,000,000 rows at 100,000 studies),
a small ``contrasts.csv`` and a config with two analyses (pain MD and responders RR) that every study
enters. The data are random numbers from a fixed seed (not evidence of anything). Each stage then runs as
its own process, as the workflow's jobs do, and its wall time, CPU time (of the stage's processes) and
peak resident memory (``wait4``) are printed:

  validate        python -m tpsynth validate (read and check the three sheets)
  parse           the Snakefile's parse-time work in a ``snakemake -n`` dry run (config, sheets, digests)
  ingest          validate + harmonise, write arms.csv and the ingest data flow (rule ingest)
  analyse ID      one analysis (rule analyse), leave-one-out and cumulative pooling included
  collect         result tables and the data flow (rule collect)
  figures ID      forest and funnel plots of one analysis, PNG/SVG/PDF (drawn by rule analyse)
  report          the summary figure (rule summary_figure) and results/report.html (rule report)
  workflow        the whole workflow again, as `make report` runs it (snakemake -c 2 --forceall)

Peak memory is that of the stage's largest process. The package must be installed (``make``'s .venv).

Usage: python benchmarks/scale.py [--sizes 1000 10000 100000] [--stages validate ingest ...] [--keep]
       python benchmarks/scale.py --sizes 100000 --workdir DIR --stages analyse   (reuse a kept workspace)
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["validate", "parse", "ingest", "analyse", "collect", "figures", "report", "workflow"]
ANALYSES = ["pain_md", "resp_rr"]
WEEKS = [1, 4, 8, 12, 26]

CONFIG = """\
data:
  studies: data/raw/studies.csv
  outcomes: data/raw/outcomes.csv
  contrasts: data/raw/contrasts.csv
defaults: {measure: SMD, method: REML, ci: hksj_adhoc}
target: {label: low back, regions: [lumbar, gluteal]}
interventions:
  dn: {label: Dry needling, class: needling}
  sham: {label: Sham needling, class: sham}
outcomes:
  pain: {label: Pain intensity, type: continuous, higher_is_better: false, reference_scale: [0, 10], mid: 1.5}
  resp: {label: Responders, type: dichotomous, higher_is_better: true}
analyses:
  pain_md:
    title: Dry needling vs sham, pain (synthetic)
    intervention: [dn]
    comparator: [sham]
    outcome: pain
    timepoint_weeks: [0, 13]
    measure: MD
  resp_rr:
    title: Dry needling vs sham, responders (synthetic)
    intervention: [dn]
    comparator: [sham]
    outcome: resp
    timepoint_weeks: [0, 13]
    measure: RR
"""


def generate(wd: Path, n_studies: int, seed: int = 20261129) -> int:
    """Write a synthetic workspace of ``n_studies`` studies under ``wd``; return the number of outcome rows."""
    rng = np.random.default_rng(seed)
    raw = wd / "data" / "raw"
    raw.mkdir(parents=True)
    (wd / "config").mkdir()
    (wd / "config" / "config.yaml").write_text(CONFIG)
    ids = [f"s{i:06d}" for i in range(n_studies)]
    years = rng.integers(1990, 2026, n_studies)
    rob = np.array(["low", "some_concerns", "high", "not_assessed"])[rng.integers(0, 4, n_studies)]
    region = np.array(["lumbar", "gluteal", "neck"])[rng.integers(0, 3, n_studies)]
    with (raw / "studies.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["study_id", "author", "year", "design", "randomised", "region", "rob_overall", "source"])
        for i, sid in enumerate(ids):
            w.writerow([sid, f"Author{i}", int(years[i]), "parallel", "true", region[i], rob[i], "synthetic"])
    n = rng.integers(10, 120, (n_studies, 2))
    effect = rng.normal(-0.8, 0.5, n_studies)
    rows = 0
    with (raw / "outcomes.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["study_id", "arm", "intervention", "outcome", "instrument", "higher_is_better", "timepoint_weeks",
                    "value_type", "n", "mean", "sd", "events", "scale_min", "scale_max"])  # fmt: skip
        means = rng.normal(5.0, 0.8, (n_studies, len(WEEKS)))
        sds = rng.uniform(1.2, 2.5, (n_studies, 2, len(WEEKS)))
        p = rng.uniform(0.2, 0.6, (n_studies, len(WEEKS)))
        for i, sid in enumerate(ids):
            for a, (arm, code) in enumerate((("needling", "dn"), ("sham", "sham"))):
                na = int(n[i, a])
                for t, wk in enumerate(WEEKS):
                    m = means[i, t] + (effect[i] if a == 0 else 0.0)
                    w.writerow([sid, arm, code, "pain", "NPRS_0_10", "false", wk, "final", na,
                                f"{min(max(m, 0.5), 9.5):.2f}", f"{sds[i, a, t]:.2f}", "", 0, 10])  # fmt: skip
                    ev = int(round(na * min(p[i, t] * (1.3 if a == 0 else 1.0), 0.95)))
                    w.writerow([sid, arm, code, "resp", "responders", "true", wk, "final", na, "", "", ev, "", ""])
                    rows += 2
    with (raw / "contrasts.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["study_id", "intervention", "comparator", "outcome", "instrument", "timepoint_weeks", "measure",
                    "estimate", "se"])  # fmt: skip
        w.writerow([ids[0], "dn", "sham", "pain", "NPRS_0_10", 26, "MD", -1.1, 0.4])
    return rows


PRELUDE = "from tpsynth.config import load_config; config = load_config()\n"
OUTPUTS = {
    "pooled": "results/pooled.csv", "study_effects": "results/study_effects.csv",
    "subgroups": "results/subgroups.csv", "sensitivity": "results/sensitivity.csv",
    "small_study": "results/small_study.csv", "bayes": "results/bayes.csv",
    "bayes_sensitivity": "results/bayes_sensitivity.csv", "bayes_studies": "results/bayes_studies.csv",
    "effects": "data/processed/effects.csv", "dataflow": "data/processed/dataflow.csv",
}  # fmt: skip


def stage_commands(wd: Path) -> list[tuple[str, str, list[str]]]:
    """(stage, label, command) of each job, calling what scripts/*.py call (tpsynth.pipeline)."""
    py = sys.executable
    ev = "data/processed/evidence.json"
    cmds = [
        ("validate", "validate", [py, "-m", "tpsynth", "validate"]),
        ("parse", "parse", [py, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd), "-n", "-c", "1",
                            "--quiet", "all"]),  # fmt: skip
        ("ingest", "ingest", [py, "-c", PRELUDE + "from tpsynth.pipeline import run_ingest\n"
                              f"run_ingest(config, {ev!r}, 'data/processed/arms.csv', 'data/processed/slices')"]),
    ]  # fmt: skip
    for a in ANALYSES:
        cmds.append(("analyse", f"analyse {a}", [py, "-c", "from tpsynth.pipeline import run_one_analysis\n"
                     f"run_one_analysis('data/processed/slices/{a}.json', 'results/analyses/{a}.json')"]))  # fmt: skip
    jsons = [f"results/analyses/{a}.json" for a in ANALYSES]
    cmds.append(("collect", "collect", [py, "-c", "from tpsynth.pipeline import run_collect\n"
                 "class Outputs(dict):  # any further table collect writes goes to results/{name}.csv\n"
                 "    def __missing__(self, key):\n"
                 "        return f'results/{key}.csv'\n"
                 f"run_collect({jsons!r}, {ev!r}, Outputs({OUTPUTS!r}))"]))  # fmt: skip
    for a in ANALYSES:
        cmds.append(("figures", f"figures {a}", [py, "-c", (
            "from tpsynth.figures import forest_figure, funnel_figure, save_all\n"
            "from tpsynth.results import AnalysisResult\n"
            f"a = AnalysisResult.from_json('results/analyses/{a}.json')\n"
            f"save_all(forest_figure(a), 'results/figures/forest_{a}')\n"
            f"save_all(funnel_figure(a), 'results/figures/funnel_{a}')\n")]))  # fmt: skip
    figs = {f"{kind}_{a}": f"results/figures/{kind}_{a}.png" for a in ANALYSES for kind in ("forest", "funnel")}
    cmds.append(("report", "summary figure", [py, "-c", (
        "from tpsynth.figures import summary_figure, save_all\n"
        "from tpsynth.results import AnalysisResult\n"
        f"save_all(summary_figure([AnalysisResult.from_json(p) for p in {jsons!r}]), 'results/figures/summary')\n")]))  # fmt: skip
    cmds.append(("report", "report", [py, "-c", PRELUDE + (
        "from tpsynth.report import build_report\n"
        f"html = build_report(analysis_paths={jsons!r}, config=config, evidence_path={ev!r},"
        " config_paths=['config/config.yaml'], dataflow_path='data/processed/dataflow.csv',"
        " arms_path='data/processed/arms.csv', pooled_path='results/pooled.csv',"
        f" figure_paths={{**{figs!r}, 'summary': 'results/figures/summary.png'}}, basedir={str(ROOT)!r},"
        " source_date_epoch='0', network_paths=[])\n"
        "open('results/report.html', 'w', encoding='utf-8').write(html)\n")]))  # fmt: skip
    cmds.append(("workflow", "snakemake -c 2", [py, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(wd),
                                                "-c", "2", "--quiet", "all", "--forceall"]))  # fmt: skip
    return cmds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, float, float, int, str]:
    """(seconds, CPU seconds, peak MiB, exit code, stderr tail) of one child process, measured with wait4.

    CPU seconds are those of the process and every descendant it waited for (user + system): on a shared
    machine they vary much less than the wall time."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return time.perf_counter() - t0, _children_cpu() - cpu0, usage.ru_maxrss / 1024, -9, "timed out"
        time.sleep(0.02)
    secs = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    return secs, _children_cpu() - cpu0, usage.ru_maxrss / 1024, code, err.strip().splitlines()[-1] if err.strip() else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES)
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per stage (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the generated workspaces")
    ap.add_argument("--workdir", type=Path, help="workspace of one size kept by an earlier --keep run: run the "
                    "stages there (on the outputs of the earlier stages) instead of generating a new one")  # fmt: skip
    args = ap.parse_args()
    if args.workdir and len(args.sizes) != 1:
        ap.error("--workdir takes one size")
    print(f"{'studies':>8} {'rows':>9}  {'stage':<18} {'seconds':>8} {'CPU s':>8} {'peak MiB':>9}  note", flush=True)
    for n in args.sizes:
        wd = args.workdir or Path(tempfile.mkdtemp(prefix=f"tpsynth-scale-{n}-"))
        try:
            t0 = time.perf_counter()
            if args.workdir:
                with (wd / "data" / "raw" / "outcomes.csv").open() as fh:
                    rows = sum(1 for _ in fh) - 1
            else:
                rows = generate(wd, n)
            size = (wd / "data" / "raw" / "outcomes.csv").stat().st_size / 2**20
            print(f"{n:>8,} {rows:>9,}  {'(generate)':<18} {time.perf_counter() - t0:8.1f} {'':>8} {'':>9}  "
                  f"outcomes.csv {size:.0f} MiB", flush=True)  # fmt: skip
            for stage, label, cmd in stage_commands(wd):
                if stage not in args.stages:
                    continue
                secs, cpu, mib, code, err = run_measured(cmd, wd, args.timeout)
                note = "" if code == 0 else f"FAILED ({code}): {err}"
                print(f"{n:>8,} {rows:>9,}  {label:<18} {secs:8.1f} {cpu:8.1f} {mib:9.0f}  {note}", flush=True)
        finally:
            if args.keep or args.workdir:
                print(f"workspace kept: {wd}", flush=True)
            else:
                shutil.rmtree(wd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
