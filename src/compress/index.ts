/** Public surface of the compression pipeline (see pipeline.ts) and its output format. */
export { compress, CompressError, type CompressOptions, type DatasetCalibration, type SelfSampledCalibration, type EvaluationOptions } from './pipeline.js';
export { stderrProgress, EtaClock, type CompressProgress, type ProgressListener, type ProgressStream } from './progress.js';
export { reportToMarkdown, reportSummary, reductionsOf, type CompressionReport, type LayerReport, type TypeReport, type GroupReport, type Reduction, type Fidelity } from './report.js';
export { OutputDirError, runFingerprint, inspectOutputDir, type RunIdentity, type OutputState } from './resume.js';
export { parseRfidBlock, rfidBlockSchema, CompressedFormatError, type RfidBlock, type LayerBlock, type TypeBlock, type GroupBlock } from './output/block.js';
export * as outputNames from './output/names.js';
export { parseRecipe, loadRecipe, recipeFingerprint, recipeToJson, RecipeError, type Recipe, type RecipeInput } from './recipe.js';
export { lockOutputDir, type OutputLock } from './lock.js';
export { scanSourceTensors } from './source-scan.js';
