"""Fault injection (issue 13): no run leaves a stale or half-written result, and failures reach the user.

The four cases of the fault-injection run: an edit after deleting .snakemake/ (tests/test_pipeline.py,
test_edit_after_deleting_snakemake_metadata_is_never_stale), a sheet edited during a run, SIGKILL while a
figure is written, a full disk. Every case runs on a copy of tests/fixtures/minimal.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tpsynth.config import load_config
from tpsynth.pipeline import (
    _json_text,
    build_evidence,
    check_results_match_evidence,
    evidence_slice,
    sha256_bytes,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
RUN = [sys.executable, "-m", "tpsynth", "run", "-s", str(ROOT / "Snakefile")]
PAIN_ROW = "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,30,15,"
PAIN_EDIT = "a2001,dn,dn,pain,VAS_0_100,false,4,final,20,20,15,"
FIGURES = [f"results/figures/{k}_{a}.{e}" for k in ("forest", "funnel") for a in ("pain_md", "pain_smd", "resp_rr")
           for e in ("png", "svg", "pdf")]  # fmt: skip


def _copy(tmp_path: Path, name: str) -> Path:
    wd = tmp_path / name
    shutil.copytree(FIXTURE, wd)
    return wd


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared"
        assert time.monotonic() - t0 < timeout, f"{path} did not appear"
        time.sleep(0.05)


def _pooled(wd: Path) -> dict[str, str]:
    return {r["analysis_id"]: r["estimate"] for r in csv.DictReader((wd / "results/pooled.csv").open())}


def _complete(path: Path) -> bool:
    data = path.read_bytes()
    if path.suffix == ".pdf":
        return data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF")
    if path.suffix == ".png":
        return data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82")
    return data.rstrip().endswith(b"</svg>")


# ------------------------------------------------------------------------------ a sheet edited during a run


@pytest.mark.pipeline
def test_sheet_edited_during_a_run_never_mixes_versions(tmp_path):
    """The edit lands after ingest read the sheets: the run finishes on the evidence it read (the report
    shows the hash of those bytes and the estimates computed from them); the next run picks up the edit."""
    wd = _copy(tmp_path, "edit_during")
    outcomes = wd / "data/raw/outcomes.csv"
    original = outcomes.read_bytes()
    proc = subprocess.Popen([*SNAKEMAKE, "-d", str(wd), "-c", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(wd / "data/processed/evidence.json", proc)
    outcomes.write_text(original.decode().replace(PAIN_ROW, PAIN_EDIT))
    edited_during_run = not (wd / "results/report.html").exists()
    out = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, out[-3000:]
    assert edited_during_run
    html = (wd / "results/report.html").read_text()
    assert sha256_bytes(original) in html and sha256_bytes(outcomes.read_bytes()) not in html
    first = _pooled(wd)
    run = subprocess.run([*SNAKEMAKE, "-d", str(wd), "-c", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Finished jobid" in run.stderr + run.stdout  # the edit is newer than the evidence: rerun
    html = (wd / "results/report.html").read_text()
    assert sha256_bytes(outcomes.read_bytes()) in html and sha256_bytes(original) not in html
    second = _pooled(wd)
    assert second["pain_md"] != first["pain_md"] and second["resp_rr"] == first["resp_rr"]


def test_report_refuses_results_not_computed_from_its_evidence(tmp_path, monkeypatch):
    wd = _copy(tmp_path, "refuse")
    monkeypatch.chdir(wd)
    config = load_config("config/config.yaml")
    ev = build_evidence(config)
    analyses = [  # the two fields of an AnalysisResult that the check reads
        SimpleNamespace(analysis_id=a, evidence_sha256=sha256_bytes(_json_text(evidence_slice(config, ev, a)).encode()))
        for a in ("pain_md", "resp_rr")
    ]
    check_results_match_evidence(config, ev, analyses, "evidence.json")  # consistent: no error
    arms = ev["arms"]
    i = next(i for i, r in enumerate(arms.iter_rows()) if r["study_id"] == "a2001" and r["outcome"] == "pain")
    arms["mean"][i] -= 10  # the sheets changed after pain_md was computed
    with pytest.raises(ValueError, match=r"evidence.json: results of pain_md were not computed from the current"):
        check_results_match_evidence(config, ev, analyses, "evidence.json")


def test_sheet_changed_while_ingest_reads_it_is_an_error(tmp_path, monkeypatch):
    from tpsynth import pipeline

    wd = _copy(tmp_path, "changed_while_read")
    monkeypatch.chdir(wd)
    config = load_config("config/config.yaml")
    real = pipeline.load_sheets

    def load_then_edit(cfg):
        sheets = real(cfg)
        p = Path("data/raw/outcomes.csv")
        p.write_text(p.read_text().replace(PAIN_ROW, PAIN_EDIT))
        return sheets

    monkeypatch.setattr(pipeline, "load_sheets", load_then_edit)
    with pytest.raises(pipeline.SheetChangedError, match="data/raw/outcomes.csv: changed while being read"):
        build_evidence(config)


# ------------------------------------------------------------------------------ SIGKILL while writing


def test_sigkill_while_a_figure_is_written_leaves_no_truncated_file(tmp_path):
    """The process dies half-way through writing a PDF: the final name never holds a truncated file, and
    the next save removes the temporary file the killed writer left."""
    stem = tmp_path / "figs" / "forest_x"
    script = textwrap.dedent(f"""
        import os, signal
        from matplotlib.figure import Figure
        from tpsynth.figures.common import save_all

        real = Figure.savefig
        def dying_savefig(self, fname, **kw):
            real(self, fname, **kw)
            if kw.get("format") == "pdf":
                data = open(fname, "rb").read()
                open(fname, "wb").write(data[:389])  # half-written, as in the fault-injection run
                os.kill(os.getpid(), signal.SIGKILL)
        Figure.savefig = dying_savefig
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1], [0, 1])
        save_all(fig, {str(stem)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert stem.with_suffix(".png").is_file() and stem.with_suffix(".svg").is_file()  # finished before the kill
    assert not stem.with_suffix(".pdf").exists()
    assert list(stem.parent.glob(".forest_x.pdf.tmp-*"))  # the killed writer's temporary file
    from matplotlib.figure import Figure

    from tpsynth.figures.common import save_all

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    save_all(fig, stem)
    assert _complete(stem.with_suffix(".pdf"))
    assert not list(stem.parent.glob(".*.tmp-*"))


@pytest.mark.pipeline
def test_make_report_recovers_by_itself_after_sigkill(tmp_path):
    """Kill the whole run (-9) while figures are being written; `python -m tpsynth run` (make report) then
    finishes without --unlock or --rerun-incomplete, and every result is complete and byte-identical to an
    uninterrupted run."""
    wd = _copy(tmp_path, "killed")
    proc = subprocess.Popen([*SNAKEMAKE, "-d", str(wd), "-c", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    figs = wd / "results/figures"
    t0 = time.monotonic()
    while not (figs.is_dir() and any(figs.iterdir())):
        assert proc.poll() is None and time.monotonic() - t0 < 300, "no figure was started"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (wd / ".snakemake/locks").is_dir() and any((wd / ".snakemake/locks").iterdir())  # a stale lock
    for f in FIGURES:
        assert not (wd / f).exists() or _complete(wd / f), f
    rerun = subprocess.run([*RUN, "-d", str(wd), "-c", "2"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "recovering: removing the lock left by an interrupted run" in rerun.stdout
    clean = _copy(tmp_path, "clean")
    assert subprocess.run([*SNAKEMAKE, "-d", str(clean), "-c", "2"], capture_output=True).returncode == 0
    files = [*FIGURES, "results/pooled.csv", "results/analyses/pain_md.json", "data/processed/evidence.json"]
    for f in files:
        assert hashlib.sha256((wd / f).read_bytes()).digest() == hashlib.sha256((clean / f).read_bytes()).digest(), f
    assert not list(wd.rglob(".*.tmp-*"))


# ------------------------------------------------------------------------------ a full disk


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-c",
                            "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d"], capture_output=True)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.pipeline
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare and a mount namespace to make a small tmpfs")
def test_full_disk_reaches_the_user(tmp_path):
    """The working directory is a small tmpfs, filled once the analyses (and their plots) are done but for
    ~300 kB (room for Snakemake's own bookkeeping, not for the other figures): a figure job fails, and "No
    space left on device" (not a bare "exit status 120" with an empty log) reaches the console; no truncated
    figure is left."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    q = " ".join(f"'{c}'" for c in SNAKEMAKE)
    script = f"""
        set -u
        mount -t tmpfs -o size=24m tmpfs '{mnt}'
        cp -r '{FIXTURE}'/. '{mnt}'/
        {q} -d '{mnt}' -c 1 results/pooled.csv >/dev/null 2>&1 || {{ echo 'FIRST RUN FAILED'; exit 3; }}
        head -c 300000 /dev/zero > '{mnt}/reserve'
        dd if=/dev/zero of='{mnt}/filler' bs=4k >/dev/null 2>&1
        rm '{mnt}/reserve'
        {q} -d '{mnt}' -c 1 2>&1
        echo "EXIT=$?"
        for f in '{mnt}'/results/figures/*; do [ -f "$f" ] && echo "FIGURE $f $(tail -c 16 "$f" | od -An -c | tr -d ' \\n')"; done
        true
    """
    proc = subprocess.run(["unshare", "--mount", "--map-root-user", "bash", "-c", script], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "FIRST RUN FAILED" not in out, out[-3000:]
    assert "EXIT=0" not in out, out[-3000:]
    assert "No space left on device" in out, out[-3000:]
    assert "exit status 120" not in out, out[-3000:]
    # A job that hits the full disk says so itself (job_log); when Snakemake's own bookkeeping hits it
    # first (writing the job's script or metadata), Snakemake's error carries the same message.
    if re.search(r"Error in rule (analyse|network|summary_figure|prisma_figure):", out):  # the rules drawing figures
        assert "No space left on device (the disk holding" in out or "RuleException: OSError" in out, out[-3000:]
    for line in out.splitlines():
        if line.startswith("FIGURE ") and line.split()[1].endswith(".pdf"):
            assert "%%EOF" in line, line


# ------------------------------------------------------------------------------ the console of make report


def test_console_shows_one_line_per_job_and_errors_in_full():
    import io

    from tpsynth.run import ConsoleFilter

    snakemake_output = textwrap.dedent("""\
        Building DAG of jobs...
        [Sun Nov 29 15:00:00 2026]
        localrule analyse:
            input: data/processed/slices/pain_md.json
            output: results/analyses/pain_md.json
            jobid: 4
            reason: Missing output files: results/analyses/pain_md.json; Input files updated by another job: x, y
            wildcards: analysis_id=pain_md
        [Sun Nov 29 15:00:01 2026]
        Finished jobid: 4 (Rule: analyse)
        3 of 11 steps (27%) done
        Error: OSError: [Errno 28] No space left on device (the disk holding /w is full: free some space)
        [Sun Nov 29 15:00:02 2026]
        Error in rule figures:
            message: None
            jobid: 7
            input: results/analyses/pain_md.json
            log: logs/figures/pain_md.log (check log file(s) for error details)

        Shutting down, this might take some time.
        Complete log(s): /w/.snakemake/log/x.snakemake.log
        """)
    out = io.StringIO()
    filt = ConsoleFilter(out)
    for line in snakemake_output.splitlines(keepends=True):
        filt.feed(line)
    shown = out.getvalue().splitlines()
    assert shown[0] == "[ 3/11] analyse pain_md"
    assert "Error: OSError: [Errno 28] No space left on device (the disk holding /w is full: free some space)" in shown
    assert "Error in rule figures:" in shown
    assert "    log: logs/figures/pain_md.log (check log file(s) for error details)" in shown
    assert not any("reason:" in line or "Building DAG" in line or "Shutting down" in line for line in shown)
    assert filt.log_path == "/w/.snakemake/log/x.snakemake.log"
