/**
 * Sliding-window attention as config.json sets it, read the way transformers reads it per family:
 * one window for every layer (Mixtral's `sliding_window`; Qwen3-MoE's with `use_sliding_window`), or
 * a window for the layers `layer_types` marks "sliding_attention", whose default some families
 * derive from `max_window_layers` (Qwen2-MoE, dots.llm1). A key of the wrong type, or sliding
 * layers without a window, is refused naming the key. Beside it, the other local mask, Llama 4's
 * chunked attention (ModelConfig.attentionChunk, read by its family), and what a layer of each
 * keeps of its past in the KV cache.
 */
import { CheckpointError } from './errors.js';
import type { ModelConfig, SlidingWindow } from './types.js';

/** The window's size from config.json's `sliding_window` (`fallback` where the key is absent); null: none. */
export function windowSize(raw: Record<string, unknown>, label: string, fallback: number | null): number | null {
  const w = raw.sliding_window === undefined ? fallback : raw.sliding_window;
  if (w === null || w === 0) return null;
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 0) {
    throw new CheckpointError('InvalidConfig', `config.json key 'sliding_window': must be a positive integer or null, got ${JSON.stringify(w)} (${label} config); fix config.json`);
  }
  return w;
}

/** An integer key of config.json (`fallback` where absent). */
export function layerCountKey(raw: Record<string, unknown>, key: string, label: string, fallback: number): number {
  const v = raw[key] === undefined || raw[key] === null ? fallback : raw[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new CheckpointError('InvalidConfig', `config.json key '${key}': must be a non-negative integer, got ${JSON.stringify(v)} (${label} config); fix config.json`);
  return v;
}

/**
 * The window of layers marked sliding: by `layer_types` where config.json lists them (one per
 * layer, "sliding_attention" or "full_attention"), else, where there is a window, by
 * `sliding(layer)`, transformers' default for the family. Undefined where no layer slides.
 */
export function perLayerWindow(raw: Record<string, unknown>, numLayers: number, label: string, size: number | null, sliding: (layer: number) => boolean): { slidingWindow?: SlidingWindow } {
  const types = raw.layer_types;
  let layers: boolean[];
  if (types === undefined || types === null) {
    if (size === null) return {};
    layers = Array.from({ length: numLayers }, (_, l) => sliding(l));
  } else {
    if (!Array.isArray(types) || types.length !== numLayers || types.some((t) => t !== 'sliding_attention' && t !== 'full_attention')) {
      throw new CheckpointError('InvalidConfig', `config.json key 'layer_types': must list "sliding_attention" or "full_attention" for each of the ${numLayers} layers (${label} config); fix config.json`);
    }
    layers = types.map((t) => t === 'sliding_attention');
  }
  if (!layers.includes(true)) return {};
  if (size === null) {
    throw new CheckpointError('InvalidConfig', `config.json marks sliding-window layers but sets no window (sliding_window, or use_sliding_window false) (${label} config); set sliding_window, or make every layer "full_attention"`);
  }
  return { slidingWindow: layers.every(Boolean) ? { size } : { size, layers } };
}

/** One window for every layer (null: none). */
export function everyLayerWindow(size: number | null): { slidingWindow?: SlidingWindow } {
  return size === null ? {} : { slidingWindow: { size } };
}

/** The attention window of decoder layer `layer` (config.slidingWindow), null: none. */
export function slidingWindowOf(config: Pick<ModelConfig, 'slidingWindow'>, layer: number): number | null {
  const w = config.slidingWindow;
  return w !== undefined && (w.layers?.[layer] ?? true) ? w.size : null;
}

/** The attention chunk length of decoder layer `layer` (config.attentionChunk), null: the layer is not chunked. */
export function attentionChunkOf(config: Pick<ModelConfig, 'attentionChunk'>, layer: number): number | null {
  const c = config.attentionChunk;
  return c !== undefined && (c.layers?.[layer] ?? true) ? c.size : null;
}

/**
 * The most past positions a row of decoder layer `layer` attends to, plus one (its window W: it
 * sees W − 1 before itself), null: every earlier position. A chunk of C positions is such a window
 * of C (its last row sees the C − 1 before it), which is all the KV cache must keep of that layer.
 */
export function localSpanOf(config: Pick<ModelConfig, 'slidingWindow' | 'attentionChunk'>, layer: number): number | null {
  const window = slidingWindowOf(config, layer);
  const chunk = attentionChunkOf(config, layer);
  if (window === null) return chunk;
  return chunk === null ? window : Math.min(window, chunk);
}
