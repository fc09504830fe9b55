#!/usr/bin/env python3
"""RFID-MoE for one layer and one matrix type, in numpy: the peer of src/compress/compress-layer.ts.

Same algorithm, same arithmetic where it decides integers (budget floors, water-filling bisection,
largest-remainder order), so both should allocate the same ranks on the same data:
  groups of k by routing frequency (descending, ties by index; last group smaller),
  effective rank of each stacked group from np.linalg.svd(compute_uv=False),
  C = xi*E + (1-xi)*F over share-normalised signals,
  ranks by bounded water-filling + largest remainder (or the paper's floor),
  truncated SVD factors (A = U_K S_K, B = V_K^T), tile residual (bucket means).

Input: --input FILE.bin holding n*p*d float32 values (experts one after another, each p x d
row-major) and --frequencies FILE.json (a list of n counts); or, without --input, a seeded
generated layer (--seed). Prints one JSON object: ranks, budget, params, per-group errors,
timings (ms) and peak RSS.

  python3 scripts/rfid_numpy.py --n 16 --p 768 --d 2048 --seed 1
"""
import argparse
import json
import math
import resource
import sys
import time

import numpy as np


def floor_tol(x):
    # the same forgiving floor as src/rank-allocation/budget.ts
    return math.floor(x * (1 + 1e-12))


def effective_rank(sigma):
    e = np.asarray(sigma, dtype=np.float64) ** 2
    total = float(e.sum())
    if total == 0.0:
        return 0.0
    pj = e[e > 0] / total
    return float(math.exp(-float(np.sum(pj * np.log(pj)))))


def share_normalise(values):
    total = 0.0
    for v in values:
        total += v
    if total == 0.0:
        return [1.0 / len(values)] * len(values)
    return [v / total for v in values]


def rank_cap(size, p, d):
    return min(size * p, d, (size * p * d) // (size * p + d))


def allocate(scores, sizes, p, d, budget, rounding):
    costs = [s * p + d for s in sizes]
    caps = [rank_cap(s, p, d) for s in sizes]
    if budget < sum(costs):
        raise SystemExit("budget below one rank per group")
    total = 0.0
    for s in scores:
        total += s
    shares = [s / total for s in scores] if total > 0 else [1.0 / len(scores)] * len(scores)
    if rounding == "floor":
        k_total = floor_tol(budget / (max(sizes) * p + d))
        return [min(max(floor_tol(k_total * c), 1), caps[g]) for g, c in enumerate(shares)]

    def spend(lam):
        s = 0.0
        for g in range(len(shares)):
            s += costs[g] * min(max(lam * shares[g], 1), caps[g])
        return s

    capped = 0
    for g in range(len(shares)):
        capped += costs[g] * caps[g]
    if capped <= budget:
        ideal = [float(c) for c in caps]
    else:
        hi = 1.0
        while spend(hi) < budget:
            hi *= 2
        lo = 0.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if spend(mid) <= budget:
                lo = mid
            else:
                hi = mid
        ideal = [min(max(lo * shares[g], 1), caps[g]) for g in range(len(shares))]
    ranks = [math.floor(x) for x in ideal]
    left = budget
    for g in range(len(ranks)):
        left -= ranks[g] * costs[g]
    order = sorted(range(len(ideal)), key=lambda g: (-(ideal[g] - math.floor(ideal[g])), g))
    while True:
        gave = False
        for g in order:
            if ranks[g] < caps[g] and costs[g] <= left:
                ranks[g] += 1
                left -= costs[g]
                gave = True
        if not gave:
            break
    return ranks


def tile_project(r, q):
    length = r.size
    starts = (np.arange(q + 1, dtype=np.int64) * length) // q
    sizes = np.diff(starts)
    sums = np.add.reduceat(r.astype(np.float64), starts[:-1])
    eta = sums / np.sqrt(sizes)
    return eta.astype(np.float32), sizes


def tile_reconstruct(eta, sizes):
    return np.repeat(eta.astype(np.float64) / np.sqrt(sizes), sizes).astype(np.float32)


def compress_layer(W, freqs, p, d, retain, beta, k, xi, rounding):
    """W: (n, p, d) float32. Returns a result dict (same fields as the TS result where shared)."""
    n = W.shape[0]
    t0 = time.perf_counter()
    order = sorted(range(n), key=lambda i: (-freqs[i], i))
    groups = [order[s:s + k] for s in range(0, n, k)]
    sizes = [len(g) for g in groups]

    spectra = []
    for g in groups:
        M = W[g].reshape(len(g) * p, d)
        spectra.append(np.linalg.svd(M, compute_uv=False))
    eranks = [effective_rank(s) for s in spectra]
    t1 = time.perf_counter()

    original = n * p * d
    target = retain * original
    q = floor_tol(beta * p * d) if beta > 0 else 0
    rank_budget = target - n * q
    F = share_normalise([float(sum(freqs[e] for e in g)) for g in groups])
    E = share_normalise(eranks)
    C = [xi * E[g] + (1 - xi) * F[g] for g in range(len(groups))]
    ranks = allocate(C, sizes, p, d, rank_budget, rounding)
    t2 = time.perf_counter()

    factor_s = 0.0
    residual_s = 0.0
    out_groups = []
    for gi, g in enumerate(groups):
        ta = time.perf_counter()
        M = W[g].reshape(len(g) * p, d)
        K = ranks[gi]
        U, S, Vt = np.linalg.svd(M, full_matrices=False)
        A = U[:, :K] * S[:K]
        B = Vt[:K]
        R = M - A @ B
        tb = time.perf_counter()
        factor_s += tb - ta
        before = float(np.sum(R.astype(np.float64) ** 2))
        weight = float(np.sum(M.astype(np.float64) ** 2))
        recovered = 0.0
        if q > 0:
            for j in range(len(g)):
                Rj = R[j * p:(j + 1) * p].reshape(-1)
                eta, bucket_sizes = tile_project(Rj, q)
                Rj -= tile_reconstruct(eta, bucket_sizes)
                recovered += float(np.sum(eta.astype(np.float64) ** 2))
        after = float(np.sum(R.astype(np.float64) ** 2))
        residual_s += time.perf_counter() - tb
        out_groups.append({
            "experts": [int(e) for e in g],
            "rank": int(K),
            "erank": eranks[gi],
            "C": C[gi],
            "weightRelBefore": math.sqrt(before / weight) if weight > 0 else 0.0,
            "weightRelAfter": math.sqrt(after / weight) if weight > 0 else 0.0,
            "residualEnergyRecovered": recovered / before if before > 0 else 0.0,
        })
    t3 = time.perf_counter()
    stored = sum(ranks[g] * (sizes[g] * p + d) + sizes[g] * q for g in range(len(groups)))
    return {
        "ranks": [int(r) for r in ranks],
        "kTotal": floor_tol(rank_budget / (k * p + d)),
        "params": {"original": original, "stored": stored, "ratio": stored / original},
        "groups": out_groups,
        "timings": {
            "spectrumMs": (t1 - t0) * 1e3,
            "allocateMs": (t2 - t1) * 1e3,
            "factorMs": factor_s * 1e3,
            "residualMs": residual_s * 1e3,
            "totalMs": (t3 - t0) * 1e3,
        },
    }


def generated_layer(n, p, d, seed):
    rng = np.random.default_rng(seed)
    W = np.empty((n, p, d), dtype=np.float32)
    for i in range(n):
        r = 32
        s = (3.0 / (1 + np.arange(r))).astype(np.float32)
        W[i] = (rng.standard_normal((p, r), dtype=np.float32) * s) @ rng.standard_normal((r, d), dtype=np.float32) / math.sqrt(d)
        W[i] += 0.02 * rng.standard_normal((p, d), dtype=np.float32)
    freqs = [int(1000 / (1 + i) ** 1.1) for i in rng.permutation(n)]
    return W, freqs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", help="raw float32 file: n*p*d values, experts one after another")
    ap.add_argument("--frequencies", help="JSON list of n routing counts (required with --input)")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--p", type=int, required=True)
    ap.add_argument("--d", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated layer (without --input)")
    ap.add_argument("--retain", type=float, default=0.6)
    ap.add_argument("--residual-share", type=float, default=0.03)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--xi", type=float, default=0.8)
    ap.add_argument("--rounding", choices=["largest-remainder", "floor"], default="largest-remainder")
    args = ap.parse_args()

    t_load = time.perf_counter()
    if args.input:
        if not args.frequencies:
            ap.error("--frequencies is required with --input")
        W = np.fromfile(args.input, dtype=np.float32)
        if W.size != args.n * args.p * args.d:
            ap.error(f"{args.input} holds {W.size} float32 values, expected n*p*d = {args.n * args.p * args.d}")
        W = W.reshape(args.n, args.p, args.d)
        with open(args.frequencies) as fh:
            freqs = [float(x) for x in json.load(fh)]
        if len(freqs) != args.n:
            ap.error(f"{args.frequencies} has {len(freqs)} counts, expected {args.n}")
    else:
        W, freqs = generated_layer(args.n, args.p, args.d, args.seed)
    load_ms = (time.perf_counter() - t_load) * 1e3

    result = compress_layer(W, freqs, args.p, args.d, args.retain, args.residual_share, args.group_size, args.xi, args.rounding)
    result["loadMs"] = load_ms
    result["numpy"] = np.__version__
    # ru_maxrss is in kB on Linux
    result["peakRssMiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
