/**
 * Per-expert input Gram matrices XᵀX (hidden × hidden, f64), for activation-aware whitening.
 * X is the normalised hidden state of the tokens routed to the expert (its gate/up input; Llama
 * 4's experts take it times the token's routing weight, and that scaled row is X). The
 * accumulation is streamed: each expert's matrix is handed to a sink as soon as its tokens have
 * passed (all calibration windows go through a layer together, so that is its final value) and
 * dropped, so at most one H×H matrix is held at a time.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Engine } from '../engine/types.js';
import type { MoeObserver } from '../runtime/moe.js';
import { syncFiles, writeFileAtomic } from '../io/atomic.js';
import { readGramFile, readGramFileSync, writeGramFile } from './gram-io.js';

export interface GramSink {
  /** `gram` is hidden × hidden row-major f64 summed over `tokens` rows */
  add(layer: number, expert: number, gram: Float64Array, tokens: number): void | Promise<void>;
}

/**
 * How each routed token counts in an expert's Gram matrix:
 *  'tokens'            Σ x xᵀ, every routed token once (the plain input statistics);
 *  'routing'           Σ w x xᵀ, weighted by the routing weight w the block multiplies the expert's
 *                      output by: a token that barely uses the expert barely shapes its factors
 *                      (Llama 4's weight is in x already, and w is 1: its output is not weighted);
 *  'routing-squared'   Σ w² x xᵀ: the first-order weight of the expert's error in the block output.
 */
export type GramWeighting = 'tokens' | 'routing' | 'routing-squared';
export const GRAM_WEIGHTINGS: readonly GramWeighting[] = ['tokens', 'routing', 'routing-squared'];

export class GramObserver implements MoeObserver {
  constructor(
    private readonly engine: Engine,
    private readonly hidden: number,
    private readonly sink: GramSink,
    private readonly weighting: GramWeighting = 'tokens',
  ) {}

  async onExpertInput(layer: number, expert: number, x: Float32Array, rows: number, routingWeights?: Float32Array): Promise<void> {
    const x64 = Float64Array.from(x);
    if (this.weighting !== 'tokens') {
      if (!routingWeights || routingWeights.length !== rows) throw new Error(`routing-weighted Gram matrices need the ${rows} routing weights of expert ${expert} (layer ${layer})`);
      const h = this.hidden;
      for (let i = 0; i < rows; i++) {
        // rows scaled by √w (or w) so that XᵀX sums w·x xᵀ (or w²·x xᵀ)
        const w = Math.abs(routingWeights[i]);
        const s = this.weighting === 'routing' ? Math.sqrt(w) : w;
        for (let j = 0; j < h; j++) x64[i * h + j] *= s;
      }
    }
    const gram = new Float64Array(this.hidden * this.hidden);
    this.engine.syrk(this.hidden, rows, x64, gram, { trans: true });
    await this.sink.add(layer, expert, gram, rows);
  }
}

export const GRAM_MANIFEST = 'grams.json';

export interface GramManifest {
  format: 'rfid-moe.expert-grams';
  version: 1;
  hiddenSize: number;
  modelFingerprint: string;
  /** entries[`${layer}/${expert}`] = { file, tokens } */
  entries: Record<string, { file: string; tokens: number }>;
}

/**
 * Writes one safetensors file per (layer, expert) (gram-io.ts), and a manifest `grams.json` at
 * `finish()`. A second contribution for the same expert (several passes) is summed into the file
 * already written. Each file is renamed into place unsynced, and `finish()` syncs them all before
 * it writes the manifest: the manifest is what vouches for them, so a crash before it leaves a
 * directory no reader takes, and the disk catches up in the background while the next experts'
 * matrices are computed instead of in one blocking fsync per file.
 */
/** Gram files a GramDirectorySink writes at once (16 MiB each at hidden 2048). */
const MAX_WRITES_IN_FLIGHT = 2;

export class GramDirectorySink implements GramSink {
  private readonly manifest: GramManifest;
  /** files written since the last finish(), not yet synced */
  private readonly unsynced = new Set<string>();
  /**
   * Files being written: up to MAX_WRITES_IN_FLIGHT, so the next experts' matrices are computed
   * while the disk takes these (calibrating with Gram matrices waited on its writes 12 of 34 s).
   */
  private readonly writing = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  private dirMade = false;

  constructor(readonly dir: string, hiddenSize: number, modelFingerprint: string) {
    this.manifest = { format: 'rfid-moe.expert-grams', version: 1, hiddenSize, modelFingerprint, entries: {} };
  }

  /** Waits until at most `limit` writes are under way; a write that failed fails the caller. */
  private async settle(limit: number): Promise<void> {
    while (this.writing.size > limit) await Promise.race(this.writing);
    if (this.failure) throw this.failure.error;
  }

  async add(layer: number, expert: number, gram: Float64Array, tokens: number): Promise<void> {
    if (!this.dirMade) {
      await mkdir(this.dir, { recursive: true });
      this.dirMade = true;
    }
    // a manifest left by an earlier run would vouch for files now being replaced: gone until finish()
    if (this.unsynced.size === 0 && this.writing.size === 0) await rm(path.join(this.dir, GRAM_MANIFEST), { force: true });
    const key = `${layer}/${expert}`;
    const file = `layer${layer}-expert${expert}.gram.safetensors`;
    const target = path.join(this.dir, file);
    const previous = this.manifest.entries[key];
    if (previous) {
      await this.settle(0);
      const old = (await readGramFile(target)).data;
      for (let i = 0; i < gram.length; i++) gram[i] += old[i];
      tokens += previous.tokens;
    }
    await this.settle(MAX_WRITES_IN_FLIGHT - 1);
    // writeGramFile packs `gram` before its first await, so the caller may drop or reuse it
    const task: Promise<void> = writeGramFile(target, gram, this.manifest.hiddenSize, { layer: String(layer), expert: String(expert), tokens: String(tokens) }, { deferSync: true })
      .then(
        () => void this.unsynced.add(target),
        (error: unknown) => void (this.failure ??= { error }),
      )
      .finally(() => this.writing.delete(task));
    this.writing.add(task);
    this.manifest.entries[key] = { file, tokens };
  }

  async finish(): Promise<GramManifest> {
    await this.settle(0);
    await mkdir(this.dir, { recursive: true });
    await syncFiles(this.unsynced);
    this.unsynced.clear();
    await writeFileAtomic(path.join(this.dir, GRAM_MANIFEST), JSON.stringify(this.manifest, null, 1) + '\n');
    return this.manifest;
  }
}

/** The Gram matrix of one expert from a directory written by GramDirectorySink (null if the expert saw no tokens). */
export async function loadGram(dir: string, layer: number, expert: number): Promise<{ gram: Float64Array; tokens: number; hiddenSize: number } | null> {
  const manifest = JSON.parse(await readFile(path.join(dir, GRAM_MANIFEST), 'utf8')) as GramManifest;
  const entry = manifest.entries[`${layer}/${expert}`];
  if (!entry) return null;
  return { gram: (await readGramFile(path.join(dir, entry.file))).data, tokens: entry.tokens, hiddenSize: manifest.hiddenSize };
}

/**
 * One layer's Gram matrices read on demand, keeping only the `keep` most recently used ones: the
 * per-layer algorithm works group by group, so memory stays at about one group's Gram matrices
 * instead of every expert's (128 × 32 MiB at Qwen3-30B-A3B shapes). Experts no calibration token
 * reached read as zero matrices.
 */
export async function lazyLayerGrams(dir: string, layer: number, hidden: number, keep: number): Promise<(expert: number) => Float64Array> {
  const manifest = JSON.parse(await readFile(path.join(dir, GRAM_MANIFEST), 'utf8')) as GramManifest;
  const cache = new Map<number, Float64Array>();
  return (expert) => {
    const hit = cache.get(expert);
    if (hit) {
      cache.delete(expert);
      cache.set(expert, hit);
      return hit;
    }
    const entry = manifest.entries[`${layer}/${expert}`];
    const gram = entry ? readGramFileSync(path.join(dir, entry.file)).data : new Float64Array(hidden * hidden);
    if (gram.length !== hidden * hidden) throw new Error(`${dir}: the Gram matrix of layer ${layer} expert ${expert} has ${gram.length} entries, expected ${hidden}×${hidden}`);
    cache.set(expert, gram);
    while (cache.size > Math.max(1, keep)) cache.delete(cache.keys().next().value as number);
    return gram;
  };
}
