export { loadCompressed, openCompressed, isCompressedDir, CompressedModel, type LoadCompressedOptions, type PreloadResult } from './load.js';
export { openModel } from './open-model.js';
export {
  FactoredLinear,
  DenseLinear,
  SwiGluExpert,
  materialise,
  applyCosts,
  addTileResidual,
  type FactoredMatrix,
  type LinearOperator,
  type ApplyMode,
} from './factored-expert.js';
// moved to the runtime (src/runtime/generation); re-exported for existing callers
export { sampleSequences, drawToken, type SampleOptions } from '../runtime/generation/index.js';
