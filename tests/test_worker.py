"""The pre-imported worker (tpsynth/worker.py): jobs run forked from it, and whenever it cannot take a job the
job runs in its own process as before. Jobs here are small scripts shaped like Snakemake's generated ones
(``__real_file__`` is the script's path); the last test runs the workflow itself with and without it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tpsynth import worker

JOB = textwrap.dedent(
    """
    __real_file__ = __file__
    from tpsynth.worker import hand_over

    hand_over(globals())

    import os, sys, time

    where = "worker" if os.environ.get("TPSYNTH_WORKER_JOB") else "own process"
    print(f"stderr of the job ({where})", file=sys.stderr)
    print(f"stdout of the job ({where})")
    with open("ran.txt", "a") as fh:
        fh.write(f"{where} {os.getpid()} {os.environ.get('JOB_VALUE')} umask {oct(os.umask(0o022))}\\n")
    action = os.environ.get("JOB_ACTION", "")
    if action == "exit":
        sys.exit(int(os.environ["JOB_STATUS"]))
    if action == "segfault" and where == "worker":
        os.kill(os.getpid(), 11)
    if action == "kill-supervisor" and where == "worker":
        os.kill(os.getppid(), 9)
        time.sleep(30)
    if action == "sleep" and where == "worker":
        with open("pid.txt", "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(30)
    if action == "raise":
        raise RuntimeError("failed in the job")
    """
)


@pytest.fixture
def running(tmp_path, monkeypatch):
    monkeypatch.delenv(worker.ENV, raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    w = worker.start(str(tmp_path / "worker.log"))
    assert w is not None
    yield w
    w.stop()
    assert not Path(w.directory).exists()


def run_job(wd: Path, **env) -> subprocess.CompletedProcess:
    wd.mkdir(exist_ok=True)
    (wd / "job.py").write_text(JOB)
    full = {**os.environ, **{k.upper(): str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "job.py"], cwd=wd, capture_output=True, text=True, env=full, timeout=60)


def ran(wd: Path) -> list[str]:
    return [line.split()[0] if line.startswith("worker") else "own" for line in (wd / "ran.txt").read_text().splitlines()]


def test_a_job_runs_in_the_worker_with_its_own_directory_environment_and_streams(running, tmp_path):
    old = os.umask(0o027)  # the job gets the caller's umask, not the worker's
    try:
        run = run_job(tmp_path / "a", job_value="from the caller")
    finally:
        os.umask(old)
    assert run.returncode == 0, run.stderr
    assert "stderr of the job (worker)" in run.stderr and "stdout of the job (worker)" in run.stdout
    line = (tmp_path / "a" / "ran.txt").read_text()
    assert line.startswith("worker ") and "from the caller" in line and "umask 0o27" in line
    pid = int(line.split()[1])
    assert pid != running.proc.pid
    assert "job.py in " + str(tmp_path / "a") in (tmp_path / "worker.log").read_text()


@pytest.mark.parametrize(("env", "status", "message"), [
    ({"job_action": "exit", "job_status": 3}, 3, None),
    ({"job_action": "raise"}, 1, "RuntimeError: failed in the job"),
    ({"job_action": "segfault"}, 1, "job killed by signal 11 (SIGSEGV)"),
])  # fmt: skip
def test_exit_status_errors_and_crashes_reach_the_caller(running, tmp_path, env, status, message):
    run = run_job(tmp_path / "b", **env)
    assert run.returncode == status, run.stderr
    assert ran(tmp_path / "b") == ["worker"]
    if message:
        assert message in run.stderr


def test_jobs_run_concurrently_each_in_its_own_process(running, tmp_path):
    wd = tmp_path / "c"
    wd.mkdir()
    (wd / "job.py").write_text(JOB)
    procs = [subprocess.Popen([sys.executable, "job.py"], cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]  # fmt: skip
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    lines = (wd / "ran.txt").read_text().splitlines()
    assert len(lines) == 4 and all(line.startswith("worker ") for line in lines)
    assert len({line.split()[1] for line in lines}) == 4


def test_without_a_worker_the_job_runs_in_its_own_process(tmp_path, monkeypatch):
    monkeypatch.setenv(worker.ENV, str(tmp_path / "no-such-socket"))
    assert run_job(tmp_path / "d").returncode == 0
    monkeypatch.setenv(worker.ENV, "0")
    assert run_job(tmp_path / "d").returncode == 0
    assert ran(tmp_path / "d") == ["own", "own"]


def test_slurm_jobs_and_other_environments_never_use_it(running, tmp_path, monkeypatch):
    assert run_job(tmp_path / "e", slurm_job_id="123").returncode == 0
    assert ran(tmp_path / "e") == ["own"]
    # a job from another Python environment (e.g. a conda env) is refused by the worker
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ[worker.ENV])
    worker._send(sock, {"script": "x.py", "cwd": str(tmp_path), "env": {}, "prefix": "/elsewhere", "umask": 0o22},
                 fds=[0, 1, 2])  # fmt: skip
    reply, _ = worker._recv(sock)
    sock.close()
    assert "another Python environment" in reply["refused"]
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert worker.start() is None


def test_a_stopped_or_killed_worker_leaves_jobs_to_their_own_process(running, tmp_path):
    assert run_job(tmp_path / "f").returncode == 0
    running.proc.kill()
    running.proc.wait()
    assert run_job(tmp_path / "f").returncode == 0
    assert ran(tmp_path / "f") == ["worker", "own"]


def test_a_job_lost_with_its_supervisor_runs_again_in_its_own_process(running, tmp_path):
    run = run_job(tmp_path / "g", job_action="kill-supervisor")
    assert run.returncode == 0, run.stderr
    assert "lost before the job finished; running it here" in run.stderr
    lines = (tmp_path / "g" / "ran.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["worker", "own"]
    if sys.platform.startswith("linux"):  # the job in the worker dies with its supervisor (SIGTERM on its
        job = int(lines[0].split()[1])  # parent's death: on a loaded machine it may take a moment to be scheduled)
        deadline = time.monotonic() + 10
        while _alive(job) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(job)


def test_killing_the_job_script_kills_the_job(running, tmp_path):
    wd = tmp_path / "h"
    wd.mkdir()
    (wd / "job.py").write_text(JOB)
    proc = subprocess.Popen([sys.executable, "job.py"], cwd=wd, env={**os.environ, "JOB_ACTION": "sleep"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 30
    while not (wd / "pid.txt").exists() or not (wd / "pid.txt").read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    job = int((wd / "pid.txt").read_text())
    assert _alive(job)
    proc.send_signal(signal.SIGTERM)  # as Snakemake does when it cancels a job
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(job)


def test_socket_directories_of_dead_workers_are_removed_at_the_next_start(tmp_path):
    import tempfile

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id no longer in use
    dirs = {}
    for name, pid in (("dead", gone.pid), ("running", os.getpid())):
        d = Path(tempfile.mkdtemp(prefix=worker._PREFIX))
        (d / "socket").write_text("")
        (d / "pid").write_text(str(pid))
        os.utime(d, (time.time() - 3600, time.time() - 3600))
        dirs[name] = d
    fresh = Path(tempfile.mkdtemp(prefix=worker._PREFIX))  # being set up by another run: too young to judge
    try:
        worker._remove_stale()
        assert not dirs["dead"].exists()
        assert dirs["running"].exists() and fresh.exists()
    finally:
        for d in (dirs["running"], fresh):
            for p in d.iterdir():
                p.unlink()
            d.rmdir()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


FIXTURE = Path(__file__).parent / "fixtures" / "minimal"
SNAKEFILE = Path(__file__).resolve().parent.parent / "Snakefile"


@pytest.mark.pipeline
def test_the_workflow_gives_byte_identical_results_with_and_without_the_worker(tmp_path):
    import hashlib
    import shutil

    files = {}
    for mode in ("worker", "0"):
        wd = tmp_path / f"wd-{mode}"
        shutil.copytree(FIXTURE, wd)
        env = {k: v for k, v in os.environ.items() if k not in (worker.ENV, "SLURM_JOB_ID")}
        if mode == "0":
            env[worker.ENV] = "0"
        run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(wd), "-c", "2"],
                             capture_output=True, text=True, env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        files[mode] = {
            str(p.relative_to(wd)): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in ("results", "data/processed") for p in sorted((wd / d).rglob("*")) if p.is_file()
        }  # fmt: skip
        log = wd / ".snakemake/tpsynth-worker.log"
        if mode == "worker":  # every job went through it (ingest may start before the worker listens)
            handed = [line for line in log.read_text().splitlines() if ", exit 0, " in line]
            names = [line.split(" in ")[0].split(".", 1)[1] for line in handed]
            assert {"analyse.py", "summary_figure.py", "collect.py", "report.py"} <= set(names), names
            jobs = list((wd / "logs").rglob("*.log"))
            assert len(handed) >= len(jobs) - ("ingest.py" not in names), (names, jobs)
        else:
            assert not log.exists()
    assert any(f.endswith(".png") for f in files["worker"]) and any(f.endswith(".pdf") for f in files["worker"])
    assert files["worker"] == files["0"]
