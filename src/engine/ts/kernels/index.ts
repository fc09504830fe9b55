/**
 * The forward kernels in TypeScript: the ts engine's implementation of `ForwardKernels`, the
 * tfjs engine's when its delegate has none of its own, and the reference the native kernels are
 * tested against.
 */
import type { ForwardKernels } from '../../types.js';
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

export const tsKernels: ForwardKernels = { causalSoftmax, logitStats, argmaxRows, rmsNorm, siluMul, rope, addInto, gatherRows, scatterAddRows, copyBlock, causalAttention, cachedAttention, swiGluExperts, addTileResidual, gemmBf16 };
