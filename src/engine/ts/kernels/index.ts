/**
 * The forward kernels in TypeScript: the ts engine's implementation of `ForwardKernels`, the
 * tfjs engine's when its delegate has none of its own, and the reference the native kernels are
 * tested against.
 */
import type { ForwardKernels, MatmulActivations } from '../../types.js';
import { causalSoftmax } from './causal-softmax.js';
import { logitStats } from './logit-stats.js';
import { argmaxRows } from './argmax-rows.js';
import { rmsNorm } from './rms-norm.js';
import { copyBlock, gatherRows, scatterAddRows } from './rows.js';
import { siluMul } from './silu-mul.js';
import { rope } from './rope.js';
import { addInto } from './add-into.js';
import { causalAttention } from './causal-attention.js';
import { cachedAttention } from './cached-attention.js';
import { swiGluExperts } from './swiglu-experts.js';
import { addTileResidual } from './tile-residual.js';
import { gemmBf16 } from './gemm-bf16.js';
import { gemmMxfp4 } from './gemm-mxfp4.js';
import { gemmFp8 } from './gemm-fp8.js';

export const tsKernels: ForwardKernels = { causalSoftmax, logitStats, argmaxRows, rmsNorm, siluMul, rope, addInto, gatherRows, scatterAddRows, copyBlock, causalAttention, cachedAttention, swiGluExperts, addTileResidual, gemmBf16, gemmMxfp4, gemmFp8 };

/** The same with BF16 matmul activations: products against BF16 weights take their activations rounded to BF16. */
export const tsKernelsBf16: ForwardKernels = {
  ...tsKernels,
  gemmBf16: (m, n, k, a, b, c, beta) => gemmBf16(m, n, k, a, b, c, beta, 'bf16'),
  gemmMxfp4: (m, n, k, a, blocks, scales, c, beta) => gemmMxfp4(m, n, k, a, blocks, scales, c, beta, 'bf16'),
  gemmFp8: (m, n, k, a, codes, scales, group, c, beta) => gemmFp8(m, n, k, a, codes, scales, group, c, beta, 'bf16'),
  swiGluExperts: (hidden, width, x, first, order, weights, gates, ups, downs, work, out, clamped) =>
    swiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, out, clamped, 'bf16'),
};

/** The TypeScript kernels for matmul activations of either kind. */
export function tsKernelsAt(activations: MatmulActivations): ForwardKernels {
  return activations === 'bf16' ? tsKernelsBf16 : tsKernels;
}
