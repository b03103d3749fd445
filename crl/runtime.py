"""Process-level CPU settings for JAX on small CPU machines; call before the first JAX computation.

Measured on the 2-core dev machine (jax 0.10.2, docs/RESULTS.md "Learner benchmark"): XLA:CPU has no flag for its
intra-op thread count; it sizes its thread pool from the process's CPU affinity mask when the backend starts. No
XLA flag tried (YNNPACK vs Eigen vs oneDNN dots, YNNPACK reductions off, 512-bit vectors, Eigen single-threaded)
changed the CRL update by more than the ~10% run-to-run noise, so none is set here.
"""

from __future__ import annotations

import os


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except Exception:  # private API moved: assume not started
        return False


def configure_cpu_threads(threads: int | None = None) -> int:
    """Limits this process to ``threads`` CPUs (the first ones of its current affinity mask) and sets
    ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` to match (unless already set).

    XLA:CPU then starts ``threads`` worker threads. Use 1 when environment workers or other jobs share a 2-core
    machine (oversubscription hurts more than the second thread helps). ``None`` keeps the current mask.
    Must run before JAX initialises its CPU backend; raises RuntimeError otherwise. Returns the thread count.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if threads is None:
        return len(cpus)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if _backend_started():
        raise RuntimeError("configure_cpu_threads must be called before the first JAX computation")
    chosen = cpus[: min(threads, len(cpus))]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, chosen)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(len(chosen)))
    return len(chosen)
