/**
 * How far a compressed model's expert matrices are from the original's, over every compressed
 * (layer, expert, type), as energy-weighted totals (docs/method.md):
 *
 *   weight space   ‖W − Ŵ‖_F / ‖W‖_F          summed over matrices before the ratio
 *   output space   ‖(W − Ŵ)Xᵀ‖_F / ‖WXᵀ‖_F    with ‖MXᵀ‖²_F = tr(M G Mᵀ), G = XᵀX the expert's
 *                                             calibration Gram matrix
 *
 * Ŵ comes from the compressed model's `readExpert` (A·B + residual, reconstructed by the
 * library's loader), W from the original checkpoint: the measure is independent of the numbers the
 * compressor reports about itself.
 */
import type { Checkpoint, ExpertMatrixType } from '../../src/checkpoint/types.js';
import type { Engine } from '../../src/engine/types.js';
import { loadGram } from '../../src/routing-stats/gram.js';

export interface ApproximationError {
  weightRel: number;
  outputRel: number;
  perType: Partial<Record<ExpertMatrixType, { weightRel: number; outputRel: number }>>;
}

interface Sums {
  weightErr: number;
  weight: number;
  outputErr: number;
  output: number;
}

/** tr(M G Mᵀ) for M p×d (row-major) and G d×d: Σ over entries of (M·G) ∘ M. */
function gramEnergy(engine: Engine, m: Float64Array, gram: Float64Array, p: number, d: number, scratch: Float64Array): number {
  engine.gemm(p, d, d, m, gram, scratch);
  let s = 0;
  for (let i = 0; i < p * d; i++) s += scratch[i] * m[i];
  return s;
}

/**
 * @param gramsDir a directory written by GramDirectorySink for `original`
 * @param types the matrix types the compressed model compressed
 */
export async function approximationError(
  original: Checkpoint,
  compressed: Checkpoint,
  engine: Engine,
  gramsDir: string,
  types: readonly ExpertMatrixType[],
): Promise<ApproximationError> {
  const { hiddenSize: H, expertIntermediateSize: I, numExperts } = original.config;
  const perType: ApproximationError['perType'] = {};
  const total: Sums = { weightErr: 0, weight: 0, outputErr: 0, output: 0 };
  for (const type of types) {
    // gate/up read the hidden state (d = H); down reads the expert's activation, whose Gram
    // matrix calibration does not collect, so down gets no output-space error
    const [p, d] = type === 'down' ? [H, I] : [I, H];
    const sums: Sums = { weightErr: 0, weight: 0, outputErr: 0, output: 0 };
    const scratch = new Float64Array(p * d);
    for (const layer of original.layout.layers) {
      if (layer.kind !== 'moe') continue;
      for (let e = 0; e < numExperts; e++) {
        const w = Float64Array.from(await original.readExpert(layer.index, e, type));
        const approx = await compressed.readExpert(layer.index, e, type);
        const delta = new Float64Array(p * d);
        for (let i = 0; i < delta.length; i++) {
          delta[i] = w[i] - approx[i];
          sums.weightErr += delta[i] * delta[i];
          sums.weight += w[i] * w[i];
        }
        if (type === 'down') continue;
        const g = await loadGram(gramsDir, layer.index, e);
        if (!g) continue; // an expert no calibration token reached contributes no output energy
        sums.outputErr += gramEnergy(engine, delta, g.gram, p, d, scratch);
        sums.output += gramEnergy(engine, w, g.gram, p, d, scratch);
      }
    }
    perType[type] = { weightRel: Math.sqrt(sums.weightErr / sums.weight), outputRel: sums.output > 0 ? Math.sqrt(sums.outputErr / sums.output) : NaN };
    total.weightErr += sums.weightErr;
    total.weight += sums.weight;
    total.outputErr += sums.outputErr;
    total.output += sums.output;
  }
  return {
    weightRel: Math.sqrt(total.weightErr / total.weight),
    outputRel: total.output > 0 ? Math.sqrt(total.outputErr / total.output) : NaN,
    perType,
  };
}
