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
  const problem = ropeProblem(config);
  return problem === null ? null : cannotRun(problem);
}

/** A problem that stops the runtime, said with what the user can still do. */
export function cannotRun(problem: string): string {
  return `${problem}, so this model cannot be run by rfid-moe; it can still be compressed with routing statistics from another tool, given as \`stats\``;
}
