/**
 * The GEMM compute kernel: C[r0:r1, c0:c1] = alpha · op(A) · op(B) + beta · C over one block of C.
 *
 * GotoBLAS-style: op(B) is packed into 4-column strips (KC×NC block), op(A) into 4-row strips
 * (MC×KC block), and a 4×4 register tile accumulates in f64 (JS numbers) over each KC slice.
 * Packing makes the inner loop read two contiguous Float64Arrays whatever the transposes are.
 *
 * IMPORTANT: `gemmBlock` must stay self-contained (no imports, no module-level constants, no
 * nested or arrow functions): gemm-parallel.ts ships its source text (`gemmBlock.toString()`) to
 * worker threads evaluated with `eval: true`, which works identically from `src/*.ts` under
 * tsx/vitest and from compiled `dist/*.js`.
 *
 * Array dtypes may be mixed (f32 A with f64 B and f64 C): internal callers use that to form f64
 * Gram matrices of f32 data without a conversion copy.
 */

export type AnyFloatArray = Float32Array | Float64Array;

export function gemmBlock(
  m: number,
  n: number,
  k: number,
  a: AnyFloatArray,
  transA: boolean,
  b: AnyFloatArray,
  transB: boolean,
  c: AnyFloatArray,
  alpha: number,
  beta: number,
  r0: number,
  r1: number,
  c0: number,
  c1: number,
): void {
  // Block sizes: a KC×4 strip of packed A and of packed B (8 KiB each) stay in L1, the MC×KC
  // packed A block (256 KiB) in L2, the KC×NC packed B block (4 MiB) in L3.
  const KC = 256;
  const MC = 128;
  const NC = 2048;

  // beta first, over exactly this block, so the k-loop below only accumulates.
  for (let i = r0; i < r1; i++) {
    const off = i * n;
    if (beta === 0) c.fill(0, off + c0, off + c1);
    else if (beta !== 1) for (let j = off + c0; j < off + c1; j++) c[j] *= beta;
  }
  if (k === 0 || alpha === 0 || r1 <= r0 || c1 <= c0) return;

  const kcMax = Math.min(KC, k);
  const pa = new Float64Array(Math.min(MC, (r1 - r0 + 3) & ~3) * kcMax);
  const pb = new Float64Array(Math.min(NC, (c1 - c0 + 3) & ~3) * kcMax);

  for (let jc = c0; jc < c1; jc += NC) {
    const nc = Math.min(NC, c1 - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);

      // Pack op(B)[pc:pc+kc, jc:jc+nc] as strips of 4 columns, zero-padded at the right edge.
      let dst = 0;
      for (let js = 0; js < nc; js += 4) {
        const w = Math.min(4, nc - js);
        const j = jc + js;
        if (!transB) {
          for (let p = 0; p < kc; p++) {
            const src = (pc + p) * n + j;
            pb[dst] = b[src];
            pb[dst + 1] = w > 1 ? b[src + 1] : 0;
            pb[dst + 2] = w > 2 ? b[src + 2] : 0;
            pb[dst + 3] = w > 3 ? b[src + 3] : 0;
            dst += 4;
          }
        } else {
          // op(B)(p, j) = B[j][p], B is n×k
          for (let t = 0; t < 4; t++) {
            let d = dst + t;
            if (t < w) {
              const src = (j + t) * k + pc;
              for (let p = 0; p < kc; p++) {
                pb[d] = b[src + p];
                d += 4;
              }
            } else {
              for (let p = 0; p < kc; p++) {
                pb[d] = 0;
                d += 4;
              }
            }
          }
          dst += 4 * kc;
        }
      }

      for (let ic = r0; ic < r1; ic += MC) {
        const mc = Math.min(MC, r1 - ic);

        // Pack op(A)[ic:ic+mc, pc:pc+kc] as strips of 4 rows, zero-padded at the bottom edge.
        let da = 0;
        for (let is = 0; is < mc; is += 4) {
          const h = Math.min(4, mc - is);
          const i = ic + is;
          if (!transA) {
            for (let t = 0; t < 4; t++) {
              let d = da + t;
              if (t < h) {
                const src = (i + t) * k + pc;
                for (let p = 0; p < kc; p++) {
                  pa[d] = a[src + p];
                  d += 4;
                }
              } else {
                for (let p = 0; p < kc; p++) {
                  pa[d] = 0;
                  d += 4;
                }
              }
            }
            da += 4 * kc;
          } else {
            // op(A)(i, p) = A[p][i], A is k×m
            for (let p = 0; p < kc; p++) {
              const src = (pc + p) * m + i;
              pa[da] = a[src];
              pa[da + 1] = h > 1 ? a[src + 1] : 0;
              pa[da + 2] = h > 2 ? a[src + 2] : 0;
              pa[da + 3] = h > 3 ? a[src + 3] : 0;
              da += 4;
            }
          }
        }

        // Macro-kernel: every 4×4 tile of this block.
        for (let js = 0; js < nc; js += 4) {
          const w = Math.min(4, nc - js);
          const bBase = js * kc; // strip (js/4) starts at (js/4)·4·kc
          for (let is = 0; is < mc; is += 4) {
            const h = Math.min(4, mc - is);
            let ai = is * kc;
            let bi = bBase;
            let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
            let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
            let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
            let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
            for (let p = 0; p < kc; p++) {
              const a0 = pa[ai], a1 = pa[ai + 1], a2 = pa[ai + 2], a3 = pa[ai + 3];
              const b0 = pb[bi], b1 = pb[bi + 1], b2 = pb[bi + 2], b3 = pb[bi + 3];
              c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
              c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
              c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
              c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
              ai += 4;
              bi += 4;
            }
            const o0 = (ic + is) * n + jc + js;
            if (h === 4 && w === 4) {
              const o1 = o0 + n, o2 = o1 + n, o3 = o2 + n;
              c[o0] += alpha * c00; c[o0 + 1] += alpha * c01; c[o0 + 2] += alpha * c02; c[o0 + 3] += alpha * c03;
              c[o1] += alpha * c10; c[o1 + 1] += alpha * c11; c[o1 + 2] += alpha * c12; c[o1 + 3] += alpha * c13;
              c[o2] += alpha * c20; c[o2 + 1] += alpha * c21; c[o2 + 2] += alpha * c22; c[o2 + 3] += alpha * c23;
              c[o3] += alpha * c30; c[o3 + 1] += alpha * c31; c[o3 + 2] += alpha * c32; c[o3 + 3] += alpha * c33;
            } else {
              // Edge tile: write only the rows/columns that exist.
              c[o0] += alpha * c00;
              if (w > 1) c[o0 + 1] += alpha * c01;
              if (w > 2) c[o0 + 2] += alpha * c02;
              if (w > 3) c[o0 + 3] += alpha * c03;
              if (h > 1) {
                const o1 = o0 + n;
                c[o1] += alpha * c10;
                if (w > 1) c[o1 + 1] += alpha * c11;
                if (w > 2) c[o1 + 2] += alpha * c12;
                if (w > 3) c[o1 + 3] += alpha * c13;
              }
              if (h > 2) {
                const o2 = o0 + 2 * n;
                c[o2] += alpha * c20;
                if (w > 1) c[o2 + 1] += alpha * c21;
                if (w > 2) c[o2 + 2] += alpha * c22;
                if (w > 3) c[o2 + 3] += alpha * c23;
              }
              if (h > 3) {
                const o3 = o0 + 3 * n;
                c[o3] += alpha * c30;
                if (w > 1) c[o3 + 1] += alpha * c31;
                if (w > 2) c[o3 + 2] += alpha * c32;
                if (w > 3) c[o3 + 3] += alpha * c33;
              }
            }
          }
        }
      }
    }
  }
}
