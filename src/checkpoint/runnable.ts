/**
 * What the runtime cannot run in a model's config, said once for every caller: the runtime refuses
 * such a model (assertRunnable), `describe` reports it (`runnable`), and compress, which can still
 * compress it from statistics made by another tool, skips its fidelity check. Each of these would
 * otherwise run silently wrong: a RoPE scaling or partial rotary width the kernels do not apply,
 * or Qwen's per-layer sliding windows (use_sliding_window, max_window_layers), which the runtime
 * does not mask (it applies Mixtral's single window only).
 */
import { ropeProblem } from './rope-scaling.js';
import type { ModelConfig } from './types.js';

/** Why the runtime cannot run this model, ending in what the user can still do; null: it can. */
export function unrunnableReason(config: ModelConfig): string | null {
  const problem =
    ropeProblem(config) ??
    ((config.family === 'qwen2_moe' || config.family === 'qwen3_moe') && config.raw.use_sliding_window === true
      ? `use_sliding_window true is not implemented for ${config.family} (its per-layer sliding windows)`
      : null) ??
    (config.family === 'dots1' && hasSlidingLayers(config) ? 'sliding-window layers (layer_types "sliding_attention") are not implemented for dots1' : null);
  return problem === null ? null : cannotRun(problem);
}

/** A problem that stops the runtime, said with what the user can still do. */
export function cannotRun(problem: string): string {
  return `${problem}, so this model cannot be run by rfid-moe; it can still be compressed with routing statistics from another tool, given as \`stats\``;
}

/**
 * Whether a dots1 config makes any layer sliding-window: its layer_types say so, or (without them)
 * sliding_window is set and max_window_layers is below the layer count, as transformers fills the
 * types in (its defaults, sliding_window 4096 and max_window_layers 62, make none of 62 layers sliding).
 */
function hasSlidingLayers(config: ModelConfig): boolean {
  const raw = config.raw;
  if (Array.isArray(raw.layer_types)) return raw.layer_types.includes('sliding_attention');
  const window = raw.sliding_window === undefined ? 4096 : raw.sliding_window;
  const from = typeof raw.max_window_layers === 'number' ? raw.max_window_layers : 62;
  return window !== null && from < config.numLayers;
}
