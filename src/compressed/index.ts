export { loadCompressed, openCompressed, isCompressedDir, CompressedModel, type LoadCompressedOptions, type PreloadResult } from './load.js';
export { openModel } from './open-model.js';
export { densify, DensifyError, type DensifyOptions, type DensifyResult } from './densify.js';
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
  type FactoredLinearOptions,
} from './factored-expert.js';
// moved to the runtime (src/runtime/generation); re-exported for existing callers
export { sampleSequences, drawToken, type SampleOptions } from '../runtime/generation/index.js';
export { verifyOutputFiles, hashFiles, sha256OfFile, stderrHashProgress, IntegrityError, type HashProgress, type VerifyOptions } from './verify.js';
export { describeCompressed, unfinishedRun, UnfinishedRunError, type CompressedDescription } from './describe.js';
