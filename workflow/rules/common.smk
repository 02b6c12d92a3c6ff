# Shared helpers for the rules.
import atexit
import gc
import threading

# When Snakemake's process ends, Python's shutdown runs the cyclic garbage collector over the ~110,000
# objects Snakemake and the Snakefile imported: ~0.3 s at the end of every run, the nothing-to-do rerun
# included. gc.freeze() at exit leaves them to the operating system instead. It runs before the other
# exit handlers (it is registered after them, and they run last-in, first-out), so logging's flush and
# close of every handler still happens; objects freed by reference counting (files closed in `with`
# blocks, everything not in a reference cycle) are freed as before.
atexit.register(gc.freeze)

EVIDENCE = "data/processed/evidence.json"
SLICE_DIR = "data/processed/slices"
NETWORK_SLICE_DIR = "data/processed/slices/networks"


def analysis_evidence(wildcards):
    """The evidence slice of one analysis, known once the ingest checkpoint has run.

    ingest rewrites a slice only when its content changes, so its modification time alone says whether
    the analysis must rerun; after the checkpoint, Snakemake re-evaluates each analysis on the slice files.
    """
    checkpoints.ingest.get()
    return f"{SLICE_DIR}/{wildcards.analysis_id}.json"


def network_evidence(wildcards):
    """The evidence slice of one network (every row; see evidence_slice)."""
    checkpoints.ingest.get()
    return f"{NETWORK_SLICE_DIR}/{wildcards.network_id}.json"


def after_ingest(pattern, **expand_kw):
    """An input function giving ``pattern`` (formatted with the wildcards, or expanded with ``expand_kw``)
    once the ingest checkpoint has run, so that Snakemake decides whether this job reruns only after it
    knows which analyses reran (otherwise every job downstream of ingest would be scheduled)."""

    def inputs(wildcards):
        checkpoints.ingest.get()
        return expand(pattern, **expand_kw) if expand_kw else pattern.format(**wildcards)

    return inputs


# The run's start and end. Script jobs that run on this machine are forked from one worker process that
# has imported the package and the scientific stack once, instead of each importing them anew
# (tpsynth/worker.py; TPSYNTH_WORKER=0 turns it off). Cluster runs do not start it. It stops with the run.
_WORKER = []


onstart:
    if workflow.local_exec:
        from tpsynth import worker

        _WORKER.append(worker.start(".snakemake/tpsynth-worker.log", wait=False))


def _end_of_run():
    for w in filter(None, _WORKER):
        w.stop()
    # Snakemake's job-rate limiter (--max-jobs-per-timespan, default 100/1s) leaves a re-evaluation timer
    # of up to 1 s after its last scheduling round, a non-daemon thread Python waits for before exiting.
    # The run is over: nothing waits for that re-evaluation, so cancel it instead of waiting (~0.5 s a run).
    for t in threading.enumerate():
        if isinstance(t, threading.Timer):
            t.cancel()


onsuccess:
    _end_of_run()


onerror:
    _end_of_run()
