"""``python -m tpsynth run``: the pipeline as ``make report`` runs it, short on the console, never stuck.

* One progress line per finished job (``[ 3/21] analyse pain_md``) instead of Snakemake's ~20 lines per job
  (its ``reason:`` lists run to thousands of characters); errors are shown in full, and the path of
  Snakemake's complete log (``.snakemake/log/*.snakemake.log``, always written in full) is printed last.
* Recovers by itself after a crash (a killed run, a power cut): Snakemake leaves its lock and marks the
  outputs of the jobs it was running as incomplete, and would refuse to start until the user runs
  ``--unlock`` and ``--rerun-incomplete``. Here runs through this command exclude each other with an
  operating-system lock (released by the kernel when the process dies, so it is never stale); holding it,
  a Snakemake lock left in the directory can only come from a dead run and is removed, and incomplete
  outputs are always recomputed (``--rerun-incomplete``). Outputs themselves are never half-written
  (:func:`tpsynth.tables.replace_atomically`).
"""

from __future__ import annotations

import fcntl
import re
import subprocess
import sys
import time
from pathlib import Path

FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")
STEPS = re.compile(r"^(\d+) of (\d+) steps \(\d+%\) done")
RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):")
JOBID = re.compile(r"^\s+jobid: (\d+)")
WILDCARDS = re.compile(r"^\s+wildcards: (.*)")
LOG = re.compile(r"^Complete log\(s\): (.*)")
ERROR = re.compile(
    r"^(Error|Exception|WorkflowError|MissingInput|Invalid|Traceback|RuleException|IncompleteFiles|LockException"
    r"|Directory cannot be locked|\S*Error\b|\S*Exception\b)"
)


def _snakemake(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def _acquire(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fh = lock_path.open("w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh


class ConsoleFilter:
    """Turns Snakemake's console output into one line per finished job plus every error in full."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.jobs: dict[str, str] = {}  # jobid -> "rule wildcards"
        self.current: list[str | None] = [None, None]  # rule, jobid of the job block being read
        self.finished: str | None = None
        self.in_error = False
        self.errors = 0
        self.log_path: str | None = None
        self.tail: list[str] = []

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        self.tail = (self.tail + [line])[-40:]
        if self.in_error:
            if not line.strip():
                self.in_error = False
            elif not line.lstrip().startswith(("reason:", "input:", "output:")):
                self._print(line)
            return
        if m := RULE.match(line):
            self.current = [m.group(1), None]
        elif (m := JOBID.match(line)) and self.current[0]:
            self.current[1] = m.group(1)
            self.jobs[m.group(1)] = self.current[0]
        elif (m := WILDCARDS.match(line)) and self.current[1]:
            values = ", ".join(v.split("=", 1)[-1] for v in m.group(1).split(", "))
            self.jobs[self.current[1]] = f"{self.current[0]} {values}"
        elif m := FINISHED.match(line):
            self.finished = self.jobs.get(m.group(1), m.group(2))
        elif (m := STEPS.match(line)) and self.finished:
            width = len(m.group(2))
            self._print(f"[{int(m.group(1)):>{width}}/{m.group(2)}] {self.finished}")
            self.finished = None
        elif m := LOG.match(line):
            self.log_path = m.group(1)
        elif line.startswith("Nothing to be done"):
            self._print("Nothing to be done: every result is up to date.")
        elif ERROR.match(line):
            self.errors += 1
            self.in_error = True
            self._print(line)


def run(args: list[str], workdir: str | Path = ".", out=None) -> int:
    """Run Snakemake with ``args`` in ``workdir`` as described in the module docstring; return its status."""
    out = out or sys.stdout
    wd = Path(workdir)
    for i, a in enumerate(args):  # the working directory Snakemake will use (-d / --directory)
        if a in ("-d", "--directory") and i + 1 < len(args):
            wd = Path(args[i + 1])
    lock = _acquire(wd / ".snakemake" / "tpsynth-run.lock")
    if lock is None:
        print(f"another `make report` / `python -m tpsynth run` is running in {wd.resolve()}; wait for it", file=out)
        return 1
    try:
        stale = sorted((wd / ".snakemake" / "locks").glob("*"))
        if stale:
            print("recovering: removing the lock left by an interrupted run", file=out, flush=True)
            subprocess.run(_snakemake("--unlock", *args), capture_output=True, text=True, check=False)
        t0 = time.perf_counter()
        filt = ConsoleFilter(out)
        with subprocess.Popen(
            _snakemake("--rerun-incomplete", *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            bufsize=1,
        ) as proc:  # fmt: skip
            for line in proc.stdout:
                filt.feed(line)
        rc = proc.wait()
        if rc != 0 and not filt.errors:
            print("\n".join(filt.tail), file=out)
        took = time.perf_counter() - t0
        status = "finished" if rc == 0 else f"FAILED (exit status {rc})"
        print(f"snakemake {status} in {took:.1f} s", file=out)
        if filt.log_path:
            print(f"full log: {filt.log_path}", file=out)
        return rc
    finally:
        lock.close()
