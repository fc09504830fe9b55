export {
  evaluateWindows,
  ReferenceCache,
  computePerplexity,
  compareModels,
  type EvalOptions,
  type EvalProgress,
  type PerplexityResult,
  type ComparisonResult,
  type EvaluationResult,
} from './evaluate.js';
export { maxPositions, defaultEvalSeqLen, checkEvalSeqLen, EvalSettingsError } from './seq-len.js';
