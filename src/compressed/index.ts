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
} from './factored-expert.js';
export { sampleSequences, drawToken, type SampleOptions } from './sample.js';
export { verifyOutputFiles, hashFiles, sha256OfFile, stderrHashProgress, IntegrityError, type HashProgress, type VerifyOptions } from './verify.js';
export { describeCompressed, unfinishedRun, UnfinishedRunError, type CompressedDescription } from './describe.js';
