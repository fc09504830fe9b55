#!/usr/bin/env python3
"""Golden values for the linear-algebra engine conformance tests (test/engine/conformance.test.ts).

Run from the repository root with numpy (any recent version):

    python3 scripts/gen-linalg-golden.py

Writes test/golden/linalg/cases.json (one entry per case: op, dimensions, options, and where each
array lies) and test/golden/linalg/data.bin (every array, float64 little-endian, concatenated).
Inputs are stored alongside outputs, so the TypeScript side needs no matching PRNG. f32 cases
store inputs already rounded to float32 (exact in float64); their outputs are computed from those
rounded inputs in float64, so they are the exact answer the engine's f32 result approximates.
"""
import json
import os

import numpy as np

OUT_DIR = os.path.join("test", "golden", "linalg")
rng = np.random.default_rng(20250101)
blob: list[np.ndarray] = []
offset = 0
cases: list[dict] = []


def put(arr: np.ndarray) -> dict:
    global offset
    flat = np.ascontiguousarray(arr, dtype="<f8").ravel()
    entry = {"offset": offset, "length": int(flat.size), "shape": list(arr.shape)}
    blob.append(flat)
    offset += flat.size
    return entry


def rand(shape, dtype):
    x = rng.standard_normal(shape)
    return x.astype(np.float32).astype(np.float64) if dtype == "f32" else x


def add(op: str, dtype: str, params: dict, arrays: dict) -> None:
    cases.append({"op": op, "dtype": dtype, "params": params, "arrays": {k: put(v) for k, v in arrays.items()}})


# GEMM: every transpose combination, both dtypes, three (alpha, beta) pairs.
ALPHA_BETA = [(1.0, 0.0), (0.5, 1.0), (-1.5, 0.25)]
for dtype in ("f32", "f64"):
    for idx, (transA, transB) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        for alpha, beta in ALPHA_BETA:
            m, n, k = 13, 11, 17 + idx  # odd sizes exercise the 4×4 tile edges
            a = rand((k, m) if transA else (m, k), dtype)
            b = rand((n, k) if transB else (k, n), dtype)
            c0 = rand((m, n), dtype)
            opA = a.T if transA else a
            opB = b.T if transB else b
            c = alpha * (opA @ opB) + beta * c0
            add("gemm", dtype, {"m": m, "n": n, "k": k, "transA": transA, "transB": transB, "alpha": alpha, "beta": beta},
                {"a": a, "b": b, "c0": c0, "c": c})
    # one larger product: several KC/MC blocks are not reached, but many full tiles are
    m, n, k = 64, 48, 40
    a, b, c0 = rand((m, k), dtype), rand((k, n), dtype), rand((m, n), dtype)
    add("gemm", dtype, {"m": m, "n": n, "k": k, "transA": False, "transB": False, "alpha": 1.0, "beta": 1.0},
        {"a": a, "b": b, "c0": c0, "c": a @ b + c0})

# SYRK: C = alpha·op(A)·op(A)ᵀ + beta·C, both triangles filled.
for dtype in ("f32", "f64"):
    for trans in (False, True):
        for alpha, beta in ALPHA_BETA:
            n, k = 12, 21
            a = rand((k, n) if trans else (n, k), dtype)
            c0 = rand((n, n), dtype)
            c0 = c0 + c0.T  # a symmetric C, as syrk's beta·C assumes
            if dtype == "f32":
                c0 = c0.astype(np.float32).astype(np.float64)
            g = a.T @ a if trans else a @ a.T
            add("syrk", dtype, {"n": n, "k": k, "trans": trans, "alpha": alpha, "beta": beta}, {"a": a, "c0": c0, "c": alpha * g + beta * c0})

# Cholesky: a well-conditioned SPD matrix, and an indefinite one that needs the first damping step.
n = 24
x = rng.standard_normal((n, 3 * n))
spd = x @ x.T / (3 * n) + 0.5 * np.eye(n)
add("cholesky", "f64", {"n": n, "damping": 0.0}, {"a": spd, "L": np.linalg.cholesky(spd)})

n = 16
q, _ = np.linalg.qr(rng.standard_normal((n, n)))
eigs = np.linspace(1.0, 2.0, n)
mean_diag = eigs.mean()  # trace is invariant, so mean(diag(A)) = mean(eigenvalues)
eigs[0] = -1e-7 * mean_diag  # 1e-6·mean(diag) is the first schedule step that makes it PD
indef = (q * eigs) @ q.T
indef = (indef + indef.T) / 2
lam = 1e-6
damped = indef + lam * np.mean(np.diag(indef)) * np.eye(n)
add("cholesky", "f64", {"n": n, "damping": lam}, {"a": indef, "L": np.linalg.cholesky(damped)})

# Symmetric eigendecomposition (values descending; vectors compared up to sign).
for n in (20, 48):
    x = rng.standard_normal((n, n))
    sym = (x + x.T) / 2
    w, v = np.linalg.eigh(sym)
    order = np.argsort(w)[::-1]
    add("eigSym", "f64", {"n": n}, {"a": sym, "values": w[order], "vectors": v[:, order]})

# SVD: tall and wide, both dtypes. Also the inputs of svdTop / singularValues cases.
for dtype, (m, n) in [("f64", (64, 48)), ("f32", (64, 48)), ("f64", (30, 45)), ("f32", (30, 45))]:
    a = rand((m, n), dtype)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    add("svd", dtype, {"m": m, "n": n, "topRank": 7}, {"a": a, "U": u, "S": s, "Vt": vt})

# Randomized SVD on a quickly decaying spectrum: its top r must match the exact SVD closely.
for dtype, (m, n) in [("f64", (64, 48)), ("f32", (40, 56))]:
    p = min(m, n)
    qu, _ = np.linalg.qr(rng.standard_normal((m, p)))
    qv, _ = np.linalg.qr(rng.standard_normal((n, p)))
    sigma = 0.5 ** np.arange(p)
    a = (qu * sigma) @ qv.T
    if dtype == "f32":
        a = a.astype(np.float32).astype(np.float64)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    r = 6
    add("svdRandomized", dtype, {"m": m, "n": n, "r": r, "oversample": 8, "powerIterations": 2},
        {"a": a, "U": u[:, :r], "S": s[:r], "Vt": vt[:r]})

# Triangular solves: every (lower, transL, side) combination.
n, mo = 16, 5
x = rng.standard_normal((n, 2 * n))
lower_l = np.linalg.cholesky(x @ x.T / (2 * n) + np.eye(n))
for lower in (True, False):
    tri = lower_l if lower else lower_l.T.copy()
    for transL in (False, True):
        op = tri.T if transL else tri
        for side in ("left", "right"):
            b = rng.standard_normal((n, mo) if side == "left" else (mo, n))
            xsol = np.linalg.solve(op, b) if side == "left" else np.linalg.solve(op.T, b.T).T
            add("solveTriangular", "f64", {"n": n, "m": mo, "lower": lower, "transL": transL, "side": side},
                {"L": tri, "b": b, "x": xsol})

os.makedirs(OUT_DIR, exist_ok=True)
data = np.concatenate(blob).astype("<f8")
tmp_bin = os.path.join(OUT_DIR, "data.bin.tmp")
tmp_json = os.path.join(OUT_DIR, "cases.json.tmp")
data.tofile(tmp_bin)
with open(tmp_json, "w") as f:
    json.dump({"generator": "scripts/gen-linalg-golden.py", "numpy": np.__version__, "float64Count": int(data.size), "cases": cases}, f, indent=1)
    f.write("\n")
os.replace(tmp_bin, os.path.join(OUT_DIR, "data.bin"))
os.replace(tmp_json, os.path.join(OUT_DIR, "cases.json"))
print(f"{len(cases)} cases, {data.size} float64 values ({data.nbytes / 1024:.0f} KiB) in {OUT_DIR}")
