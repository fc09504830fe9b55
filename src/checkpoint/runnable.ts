/**
 * What the runtime cannot run in a model's config, said once for every caller: the runtime refuses
 * such a model (assertRunnable), `describe` reports it (`runnable`), and compress, which can still
 * compress it from statistics made by another tool, skips its fidelity check. Each of these would
 * otherwise run silently wrong: a RoPE scaling or partial rotary width the kernels do not apply.
 */
import { ropeProblem } from './rope-scaling.js';
import type { ModelConfig } from './types.js';

/** Why the runtime cannot run this model, ending in what the user can still do; null: it can. */
export function unrunnableReason(config: ModelConfig): string | null {
  const problem = ropeProblem(config) ?? attentionShapeProblem(config);
  return problem === null ? null : cannotRun(problem);
}

/** Layers that differ in kv heads or sinks, or value heads narrower than keys (MiMo-V2-Flash): the runtime's attention takes one shape. */
function attentionShapeProblem(config: Pick<ModelConfig, 'layerKvHeads' | 'valueHeadDim' | 'sinkLayers' | 'attentionValueScale'>): string | null {
  if (config.layerKvHeads === undefined && config.valueHeadDim === undefined && config.sinkLayers === undefined && config.attentionValueScale === undefined) return null;
  return 'its attention layers differ in kv heads and sinks, with value heads of another width than its query/key heads, which the runtime does not implement';
}

/** A problem that stops the runtime, said with what the user can still do. */
export function cannotRun(problem: string): string {
  return `${problem}, so this model cannot be run by rfid-moe; it can still be compressed with routing statistics from another tool, given as \`stats\``;
}
