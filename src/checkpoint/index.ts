/** Public surface of src/checkpoint. */
export * from './types.js';
export { CheckpointError, type CheckpointErrorVariant } from './errors.js';
export { openCheckpoint } from './open.js';
export { parameterCounts, type ParameterCounts } from './counts.js';
export { describeCheckpoint, type CheckpointDescription, type LayerDescription } from './describe.js';
export { expectedTensors, type ExpectedTensor, type TensorRole } from './expected.js';
export { FAMILIES, familyByName, familyForConfig, resolveLanguageModel, supportedModelTypes } from './registry.js';
export { supportedWrapperTypes, type LanguageModelWrapper } from './wrapped.js';
export type { Family, ResolvedConfig, TensorNameTemplates } from './family.js';
export { NonFiniteError, withFiniteChecks, firstNonFinite } from './finite.js';
export { isIntegerDType } from './validate.js';
