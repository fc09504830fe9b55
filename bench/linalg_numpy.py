"""numpy peer of bench/linalg.ts: times the same operations on the same inputs.

Usage: python3 bench/linalg_numpy.py SPEC.json   (prints one JSON object on stdout)

SPEC = {"runs": int, "budget_s": float, "accuracy": bool, "ops": [op, ...]}; each op names its kind, sizes and the
raw little-endian input files written by linalg.ts:
  gemm  {m, n, k, a (m×k f32), b (k×n f32)}          C = A·B into a preallocated C
  svd   {m, n, a (m×n f32)}                           thin SVD with vectors
  rsvd  {m, n, a, r, oversample, power_iterations, omega?}   randomized top-r SVD (Halko), same
        algorithm as native; omega (optional, f64) is the native engine's Gaussian stream for
        seed 0, so both start from the same sketch (else numpy's own generator is used)
  chol  {n, a (n×n f64)}
  eig   {n, a (n×n f64)}
With "accuracy" (the default; linalg.ts asks for it in its first round only), svd also reports
its relative reconstruction error and rsvd its reconstruction error relative to the optimal
rank-r error (exact f64 singular values), which linalg.ts uses for every engine.
linalg.ts runs this with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed so numpy's own OpenBLAS
detects the CPU itself.
"""

import ctypes
import json
import os
import sys
import time

import numpy as np


def openblas_info():
    """numpy's OpenBLAS build and active kernel, read from the loaded library (as threadpoolctl does)."""
    try:
        from threadpoolctl import threadpool_info  # type: ignore

        for entry in threadpool_info():
            if entry.get("internal_api") == "openblas":
                return {
                    "source": "threadpoolctl",
                    "version": entry.get("version"),
                    "corename": entry.get("architecture"),
                    "threads": entry.get("num_threads"),
                }
    except ImportError:
        pass
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    for path in paths:
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("openblas", ""), ("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_")):
            try:
                corename = getattr(lib, f"{prefix}_get_corename{suffix}")
                config = getattr(lib, f"{prefix}_get_config{suffix}")
                threads = getattr(lib, f"{prefix}_get_num_threads{suffix}")
            except AttributeError:
                continue
            corename.restype = ctypes.c_char_p
            config.restype = ctypes.c_char_p
            return {
                "source": "ctypes (threadpoolctl not installed)",
                "version": config().decode().split()[1],
                "corename": corename().decode(),
                "threads": threads(),
            }
    return {"source": "unknown", "version": None, "corename": None, "threads": None}


def load(path, dtype, shape):
    return np.fromfile(path, dtype=dtype).reshape(shape)


def randomized_svd(a, r, oversample, power_iterations, omega=None, seed=0):
    """Halko et al.: Gaussian sketch, QR re-orthonormalisation between power iterations.

    `omega` (n×width) is the native engine's own sketch when linalg.ts provides it, so both
    implementations start from the same random matrix and their accuracies compare exactly.
    """
    m, n = a.shape
    width = min(r + oversample, m, n)
    if omega is None:
        omega = np.random.default_rng(seed).standard_normal((n, width), dtype=a.dtype)
    q, _ = np.linalg.qr(a @ omega)
    for _ in range(power_iterations):
        z, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ z)
    ub, s, vt = np.linalg.svd(q.T @ a, full_matrices=False)
    return q @ ub[:, :r], s[:r], vt[:r]


CPU_MS = []  # median process CPU time (ms) of the latest timed() call; see linalg.ts Timing.cpuMs


def timed(fn, runs, budget_s):
    """(median ms, min ms, sample count, last result) of up to `runs` timed calls after one warm-up;
    stops early past budget_s. Also leaves the median CPU time per call in CPU_MS[0]."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    first = time.perf_counter() - start
    samples, cpu = [], []
    if first > budget_s / 2:
        samples.append(first)  # too slow to repeat much: the warm-up counts
        cpu.append(time.process_time() - cpu_start)
    spent = first
    while len(samples) < runs and (not samples or spent < budget_s):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        dt = time.perf_counter() - t0
        cpu.append(time.process_time() - c0)
        samples.append(dt)
        spent += dt
    CPU_MS[:] = [float(np.median(cpu)) * 1000]
    return float(np.median(samples)) * 1000, float(np.min(samples)) * 1000, len(samples), result


def run_op(op, runs, budget_s, accuracy=True):
    kind = op["kind"]
    if kind == "gemm":
        a = load(op["a"], np.float32, (op["m"], op["k"]))
        b = load(op["b"], np.float32, (op["k"], op["n"]))
        c = np.empty((op["m"], op["n"]), dtype=np.float32)
        ms, min_ms, count, _ = timed(lambda: np.matmul(a, b, out=c), runs, budget_s)
        return {"ms": ms, "minMs": min_ms, "samples": count}
    if kind == "svd":
        a = load(op["a"], np.float32, (op["m"], op["n"]))
        ms, min_ms, count, (u, s, vt) = timed(lambda: np.linalg.svd(a, full_matrices=False), runs, budget_s)
        if not accuracy:
            return {"ms": ms, "minMs": min_ms, "samples": count}
        a64 = a.astype(np.float64)
        rel = np.linalg.norm(a64 - (u.astype(np.float64) * s) @ vt.astype(np.float64)) / np.linalg.norm(a64)
        return {"ms": ms, "minMs": min_ms, "samples": count, "relError": float(rel)}
    if kind == "rsvd":
        a = load(op["a"], np.float32, (op["m"], op["n"]))
        r = op["r"]
        omega = None
        if op.get("omega"):
            # the native stream, column-major n×width, rounded like the native code does
            width = min(r + op["oversample"], op["m"], op["n"])
            stream = np.fromfile(op["omega"], dtype=np.float64)
            omega = np.ascontiguousarray(stream.reshape(width, op["n"]).T.astype(a.dtype))
        ms, min_ms, count, (u, s, vt) = timed(
            lambda: randomized_svd(a, r, op["oversample"], op["power_iterations"], omega), runs, budget_s
        )
        if not accuracy:
            return {"ms": ms, "minMs": min_ms, "samples": count}
        a64 = a.astype(np.float64)
        sigma = np.linalg.svd(a64, compute_uv=False)
        optimal = float(np.sqrt(np.sum(sigma[r:] ** 2)))
        err = float(np.linalg.norm(a64 - (u.astype(np.float64) * s) @ vt.astype(np.float64)))
        return {"ms": ms, "minMs": min_ms, "samples": count, "optimalError": optimal, "errorVsOptimal": err / optimal}
    if kind == "chol":
        a = load(op["a"], np.float64, (op["n"], op["n"]))
        ms, min_ms, count, _ = timed(lambda: np.linalg.cholesky(a), runs, budget_s)
        return {"ms": ms, "minMs": min_ms, "samples": count}
    if kind == "eig":
        a = load(op["a"], np.float64, (op["n"], op["n"]))
        ms, min_ms, count, _ = timed(lambda: np.linalg.eigh(a), runs, budget_s)
        return {"ms": ms, "minMs": min_ms, "samples": count}
    raise ValueError(f"unknown op kind {kind!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: linalg_numpy.py SPEC.json")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    accuracy = spec.get("accuracy", True)
    results = {}
    for op in spec["ops"]:
        results[op["id"]] = run_op(op, spec["runs"], spec["budget_s"], accuracy)
        results[op["id"]]["cpuMs"] = CPU_MS[0]
    print(
        json.dumps(
            {
                "numpy": np.__version__,
                "openblas": openblas_info(),
                "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
