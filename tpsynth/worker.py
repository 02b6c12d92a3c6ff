"""A pre-imported worker for the pipeline's script jobs on one machine: each job is forked, not imported anew.

Most of a cold run's CPU went into importing: every job is a new Python process importing numpy, scipy and
matplotlib again (0.5-1 s each, 27 jobs on the shipped data; benchmarks/pipeline.py). Here, when Snakemake
runs the jobs on this machine, the Snakefile's ``onstart`` starts one worker process (:func:`start`) that
imports the package and the scientific stack once (:data:`PRELOAD`) and listens on a Unix socket in a
private temporary directory. A job script begins with :func:`hand_over`: it sends the path of the script
Snakemake generated for the job (its input, output, params and log are pickled in it), its working
directory and environment, and its standard streams; the worker forks a supervisor, the supervisor forks
the job, which runs that script exactly as ``python script`` would, and sends its exit status back. The
job script's process then exits with that status. Snakemake sees an ordinary job.

Robustness, the rules this follows:

* Never needed: whenever the worker cannot take the job (no worker started, ``TPSYNTH_WORKER=0``, a
  SLURM job (the worker would run it outside the job's allocation), another Python environment (e.g.
  ``--software-deployment-method conda``), the worker refused, crashed or was stopped before reporting an
  exit status), :func:`hand_over` returns and the job runs in its own process as before. Outputs are
  written atomically (:func:`tpsynth.tables.replace_atomically`), so running a job again never leaves a
  mixed file.
* Only local runs start one (``workflow.local_exec``); it stops with the run (``onsuccess``/``onerror``),
  and by itself when Snakemake's process is gone.
* Each job is its own forked process: jobs run concurrently, a crash (even a segfault) kills only that
  job and is reported as its failure; a job whose script process is killed (Snakemake cancelling it) is
  killed too. The worker itself never runs job code, so every job starts from the same freshly imported
  state.
* Same results: the job runs the same generated script, with the job's environment and working directory;
  the outputs are byte-identical to a run without the worker (tests/test_worker.py).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Environment variable holding the worker's socket path (set for the jobs by :func:`start`); ``0`` disables.
ENV = "TPSYNTH_WORKER"
_CHILD = "TPSYNTH_WORKER_JOB"  # set inside a forked job: its script must not hand over again

#: Modules the worker imports before it takes jobs (everything the pipeline's script jobs import).
PRELOAD = (
    "snakemake.script",
    "snakemake.logging",
    "snakemake.iocontainers",
    "tpsynth.pipeline",  # ingest first: it runs while the rest is imported
    "tpsynth.harmonise",
    "numpy",
    "scipy.optimize",
    "scipy.special",
    "tpsynth.analysis",
    "tpsynth.bayes",
    "tpsynth.network_analysis",
    "tpsynth.tables",
    "tpsynth.figures.common",
    "tpsynth.figures.forest",
    "tpsynth.figures.funnel",
    "tpsynth.figures.summary",
    "tpsynth.figures.network",
    "tpsynth.figures.prisma",
    "tpsynth.figures.rob",
    "tpsynth.figures.bubble",
    "tpsynth.prisma",
    "tpsynth.report",
    "matplotlib.backends.backend_agg",
    "matplotlib.backends.backend_svg",
    "matplotlib.backends.backend_pdf",
)

_MAX_MSG = 1 << 24


def _send(sock: socket.socket, obj, fds: list[int] | None = None) -> None:
    data = json.dumps(obj).encode("utf-8")
    head = struct.pack("!I", len(data))
    if fds:
        socket.send_fds(sock, [head], fds)
        sock.sendall(data)
    else:
        sock.sendall(head + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError("connection closed")
        buf += part
    return buf


def _recv(sock: socket.socket, nfds: int = 0):
    """One message (and up to ``nfds`` file descriptors passed with it)."""
    fds: list[int] = []
    if nfds:
        head, fds, _flags, _addr = socket.recv_fds(sock, 4, nfds)
        if len(head) < 4:
            head += _recv_exact(sock, 4 - len(head))
    else:
        head = _recv_exact(sock, 4)
    (n,) = struct.unpack("!I", head)
    if n > _MAX_MSG:
        raise ConnectionError("message too large")
    return json.loads(_recv_exact(sock, n).decode("utf-8")), fds


# ------------------------------------------------------------------------------------------ job side


def hand_over(script_globals: dict) -> None:
    """Run the calling job script in the worker if one can take it; then exit with the job's status.

    Call it first thing in a Snakemake ``script:`` (``hand_over(globals())``). Returns (and the script goes
    on in its own process) when no worker can take the job; see the module docstring.
    """
    path = os.environ.get(ENV, "")
    script = script_globals.get("__real_file__")  # the script Snakemake generated for this job
    if not path or path == "0" or os.environ.get(_CHILD) or os.environ.get("SLURM_JOB_ID") or not script:
        return
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return  # no worker (stopped, or never started): run here
    request = {"script": os.path.abspath(script), "cwd": os.getcwd(), "env": dict(os.environ),
               "prefix": sys.prefix, "umask": _umask()}  # fmt: skip
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        _send(sock, request, fds=[0, 1, 2])
        reply, _ = _recv(sock)
    except (OSError, ConnectionError, ValueError):
        reply = None
    finally:
        sock.close()
    if not reply or "exit" not in reply:
        if reply and reply.get("refused"):
            return
        print("tpsynth worker: lost before the job finished; running it here", file=sys.stderr, flush=True)
        return
    code = reply["exit"]
    if code < 0:
        print(f"job killed by signal {-code} ({signal.Signals(-code).name})", file=sys.stderr, flush=True)
        code = 1
    os._exit(code)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------- worker side


def _run_job(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the supervisor (a fork of the worker): fork the job, wait for it, send its exit status."""
    pid = os.fork()
    if pid == 0:  # the job
        try:
            conn.close()
            if sys.platform.startswith("linux"):  # die with the supervisor
                import ctypes

                ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            for target, fd in enumerate(fds[:3]):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            os.environ[_CHILD] = "1"
            os.umask(request["umask"])
            sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the job's own streams
            sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
            sys.argv = [request["script"]]
            import runpy

            runpy.run_path(request["script"], run_name="__main__")
            code = 0
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
            if not isinstance(err.code, int) and err.code is not None:
                print(err.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - as Python itself would: traceback on stderr, status 1
            import traceback

            traceback.print_exc()
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    for fd in fds:
        os.close(fd)
    # wait for the job; if the job's script process goes away (Snakemake cancelled it), stop the job
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    while True:
        watch = [conn] + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(watch, [], [], None if pidfd is not None else 0.02)
        if conn in ready:
            try:
                gone = not conn.recv(1, socket.MSG_PEEK)
            except OSError:
                gone = True
            if gone:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
                return
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
    code = os.waitstatus_to_exitcode(status)
    try:
        print(f"{Path(request['script']).name} in {request['cwd']}: pid {pid}, exit {code}, "
              f"{usage.ru_utime + usage.ru_stime:.2f} s CPU", file=sys.stderr, flush=True)  # fmt: skip
    except OSError:  # the worker's log is only a record (e.g. a full disk): the job's status still goes back
        pass
    try:
        _send(conn, {"exit": code})
    except OSError:
        pass


def _supervise(conn: socket.socket) -> None:
    try:
        request, fds = _recv(conn, nfds=3)
        if request.get("prefix") != sys.prefix or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            _send(conn, {"refused": f"another Python environment ({request.get('prefix')})"})
            return
        _run_job(conn, request, fds)
    except (OSError, ConnectionError, ValueError):
        pass


def _take(listener: socket.socket, children: set[int], timeout: float | None) -> bool:
    """Accept one connection (waiting up to ``timeout`` seconds; 0: only one already waiting) and fork its
    supervisor; False when none came."""
    listener.settimeout(timeout)
    try:
        conn, _ = listener.accept()
    except (TimeoutError, BlockingIOError):
        return False
    conn.settimeout(None)
    pid = os.fork()
    if pid == 0:
        listener.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            _supervise(conn)
        finally:
            os._exit(0)
    conn.close()
    children.add(pid)
    return True


def serve(sock_path: str, parent: int) -> None:
    """Listen on ``sock_path``, import :data:`PRELOAD`, and fork a supervisor per connection until
    ``parent`` (Snakemake) is gone or SIGTERM.

    The socket is bound first. The first job to connect (ingest, in a run that validates the sheets: every
    other job depends on it) is taken between two imports, as soon as it comes (:data:`PRELOAD` imports what
    it needs first); the jobs after it wait for all the imports, rather than each importing the rest itself.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children: set[int] = set()
    try:
        for name in PRELOAD:
            if not children:  # the run's first job (ingest) as soon as it comes; later ones wait for all
                _take(listener, children, 0)
            try:
                importlib.import_module(name)
            except ImportError as err:  # a job needing it will import it (and fail) itself
                print(f"tpsynth worker: {name}: {err}", file=sys.stderr)
        while True:
            for pid in list(children):  # reap finished supervisors (their CPU then counts in ours)
                if os.waitpid(pid, os.WNOHANG)[0]:
                    children.discard(pid)
            if not _take(listener, children, 0.5) and os.getppid() != parent:
                return
    finally:
        listener.close()
        if os.getppid() != parent:  # Snakemake was killed: nobody else will remove the socket
            Path(sock_path).unlink(missing_ok=True)
            Path(sock_path).with_name("pid").unlink(missing_ok=True)
            try:
                Path(sock_path).parent.rmdir()
            except OSError:
                pass
        else:  # stopped at the end of the run: the jobs are done (their CPU then counts in the run's)
            for pid in children:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            own = resource.getrusage(resource.RUSAGE_SELF)
            try:
                print(f"worker: {own.ru_utime + own.ru_stime:.2f} s CPU of its own (imports)", file=sys.stderr,
                      flush=True)  # fmt: skip
            except OSError:
                pass


# ------------------------------------------------------------------------------------ Snakefile side


class Worker:
    """A running worker (:func:`start`); :meth:`stop` ends it and removes its socket."""

    def __init__(self, proc: subprocess.Popen, directory: str):
        self.proc = proc
        self.directory = directory

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.environ.get(ENV, "").startswith(self.directory):
            del os.environ[ENV]
        for p in Path(self.directory).glob("*"):
            p.unlink(missing_ok=True)
        try:
            Path(self.directory).rmdir()
        except FileNotFoundError:
            pass


_PREFIX = "tpsynth-worker-"


def _remove_stale(min_age: float = 60.0) -> None:
    """Remove the socket directories of workers that died without stopping (e.g. the whole run was killed
    with SIGKILL): this user's ``tpsynth-worker-*`` directories whose worker process is gone."""
    for d in Path(tempfile.gettempdir()).glob(_PREFIX + "*"):
        try:
            st = d.stat()
            if st.st_uid != os.getuid() or time.time() - st.st_mtime < min_age:
                continue  # another user's, or one just being set up
            pid_file = d / "pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text(encoding="ascii")), 0)
                    continue  # its worker is running
                except ProcessLookupError:
                    pass
                except (PermissionError, ValueError):
                    continue
            for p in d.iterdir():
                p.unlink()
            d.rmdir()
        except OSError:
            continue


def start(log_path: str | None = None, wait: bool = True) -> Worker | None:
    """Start a worker for this process's jobs and point them to it (environment variable :data:`ENV`).

    With ``wait=False`` it returns at once: a job that connects before the worker listens (tens of
    milliseconds) runs in its own process. Returns None (no worker; the jobs run in their own processes)
    when ``TPSYNTH_WORKER=0``, inside a SLURM job, or when it cannot be started (e.g. a full disk).
    """
    if os.environ.get(ENV) == "0" or os.environ.get("SLURM_JOB_ID"):
        return None
    try:
        return _start(log_path, wait)
    except OSError as err:
        print(f"tpsynth worker not started ({err}); every job imports what it needs itself", file=sys.stderr)
        return None


def _start(log_path: str | None, wait: bool) -> Worker | None:
    if log_path:  # one line per job (appended by each job's supervisor), and any import failure
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(log_path).write_text("", encoding="utf-8")
    _remove_stale()
    directory = tempfile.mkdtemp(prefix=_PREFIX)  # mode 0700: only this user can connect
    sock_path = os.path.join(directory, "socket")
    err = open(log_path, "a", encoding="utf-8") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "tpsynth.worker", sock_path, str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=err, stderr=err,
    )  # fmt: skip
    if err is not subprocess.DEVNULL:
        err.close()
    Path(directory, "pid").write_text(str(proc.pid), encoding="ascii")  # for _remove_stale
    deadline = time.monotonic() + 10
    while wait and not os.path.exists(sock_path):  # bound within milliseconds; the imports come after
        if proc.poll() is not None or time.monotonic() > deadline:
            Worker(proc, directory).stop()
            return None
        time.sleep(0.005)
    os.environ[ENV] = sock_path
    return Worker(proc, directory)


if __name__ == "__main__":
    try:
        serve(sys.argv[1], int(sys.argv[2]))
    except SystemExit:  # SIGTERM: the end of the run
        pass
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown of everything imported: the run waits for this process to end
