"""Process-level CPU settings for JAX on small CPU machines (call ``configure_cpu_threads`` before the first JAX
computation), and the record of the machine a run computes on (``machine_info``, ``numerics_differences``).

Measured on the 2-core dev machine (jax 0.10.2, docs/RESULTS.md "Learner benchmark"): XLA:CPU has no flag for its
intra-op thread count; it sizes its thread pool from the process's CPU affinity mask when the backend starts. No
XLA flag tried (YNNPACK vs Eigen vs oneDNN dots, YNNPACK reductions off, 512-bit vectors, Eigen single-threaded)
changed the CRL update by more than the ~10% run-to-run noise, so none is set here.
"""

from __future__ import annotations

import os
import platform


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
    A change must come before JAX initialises its CPU backend; raises RuntimeError otherwise. Returns the thread
    count.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if threads is None:
        return len(cpus)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    chosen = cpus[: min(threads, len(cpus))]
    if chosen != cpus and _backend_started():  # asking for what the process has already is always fine
        raise RuntimeError("configure_cpu_threads must be called before the first JAX computation")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, chosen)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(len(chosen)))
    return len(chosen)


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it, with its family/model numbers on x86 Linux (hosts that print the same
    name can differ there, e.g. "AMD EPYC (family 25, model 17)"); ``platform.processor()`` elsewhere."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def machine_info() -> dict:
    """What a run's floating-point results depend on besides its seed and config: the JAX backend and device, the
    CPU and the number of threads XLA:CPU runs (the process's affinity; a matmul split over 1 or 2 threads sums in
    another order), and the JAX/jaxlib versions. Starts the JAX backend."""
    import jax
    import jaxlib

    device = jax.devices()[0]
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {
        "backend": device.platform,
        "device_kind": device.device_kind,
        "devices": jax.device_count(),
        "cpu": cpu_model(),
        "cpu_threads": threads,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
    }


_NUMERICS_FIELDS = ("backend", "device_kind", "devices", "jax", "jaxlib")
_CPU_NUMERICS_FIELDS = ("cpu", "cpu_threads")  # only matter when the computation runs on the CPU


def numerics_differences(before: dict, now: dict) -> list[str]:
    """The fields of two :func:`machine_info` dicts that can change a run's floating-point results, as
    ``"FIELD OLD -> NEW"``; empty when a run continued on ``now`` computes exactly as on ``before``. Fields missing
    from ``before`` (older records) are not compared."""
    names = _NUMERICS_FIELDS + (_CPU_NUMERICS_FIELDS if now.get("backend") == "cpu" else ())
    return [f"{n} {before[n]!r} -> {now.get(n)!r}" for n in names if n in before and before[n] != now.get(n)]
