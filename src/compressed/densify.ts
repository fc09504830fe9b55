/**
 * `densify(factoredDir, { out })`: a factored rfid-moe output turned into a dense one — every
 * compressed expert matrix reconstructed as Ŵ = A·B + P·η from the stored factors and written
 * under its original name, so any Hugging Face loader reads the directory as the model it was.
 * No re-compression: the factors on disk are what the dense output of the same run is built from
 * (both use the factors rounded to the stored dtype and the same reconstruction), so with the same
 * engine the shards are byte-identical to `compress --format dense` of that run.
 *
 * One shard at a time (memory bounded by one decoder layer's experts), each written atomically;
 * config.json last (the model's own model_type back, the rfid_moe block with storage 'dense' and a
 * `densified` note). The output directory must be new or empty, or an unfinished densify of the
 * same source (a marker file says so): nothing that is not ours is overwritten.
 */
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ExpertMatrixType, LayerLayout } from '../checkpoint/types.js';
import { createEngine, type EngineChoice } from '../engine/index.js';
import type { Engine } from '../engine/types.js';
import { writeFileAtomic } from '../io/atomic.js';
import { SafetensorsWriter, type TensorPlan } from '../io/safetensors-writer.js';
import { TensorStore } from '../io/sharded.js';
import type { RfidBlock } from '../compress/output/block.js';
import { hashFiles } from './verify.js';
import { copyModelFiles } from '../compress/stages/write.js';
import { outputConfigText } from '../compress/output/config-json.js';
import { writeIndex } from '../compress/output/index-file.js';
import { droppedTensors } from '../compress/output/layer-shard.js';
import { basisName, groupBaseName, CONFIG_FILE, COPIED_FILES, INDEX_FILE, moePrefix, STATS_FILE } from '../compress/output/names.js';
import { materialise } from './factored-expert.js';
import { fuseDown, fuseGateUp, fusedExpertShapes } from '../checkpoint/expert-location.js';
import { loadCompressed, type CompressedModel } from './load.js';
import { RfidMoeError } from '../errors.js';

export class DensifyError extends RfidMoeError {
  readonly kind = 'DensifyError';
  constructor(message: string) {
    super(message);
    this.name = 'DensifyError';
  }
}

export interface DensifyOptions {
  out: string;
  /** an engine instance (not disposed), or a choice (created and disposed here); default 'auto' */
  engine?: Engine | EngineChoice;
  threads?: number;
  onProgress?(event: { shard: number; of: number; file: string; etaSeconds: number | null }): void;
}

export interface DensifyResult {
  out: string;
  shards: number;
  /** expert matrices reconstructed */
  reconstructed: number;
  seconds: number;
}

/** Written first, removed last: marks an unfinished densify and which source it is from. */
const MARKER_FILE = '.rfid-moe-densify.json';

async function claimOutputDir(out: string, source: string, block: RfidBlock): Promise<void> {
  const rel = path.relative(source, out);
  if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
    throw new DensifyError(`\`out\` ${out} is the factored directory or inside it; give a new directory`);
  }
  let entries: string[] = [];
  try {
    if (!(await stat(out)).isDirectory()) throw new DensifyError(`\`out\` ${out} exists and is not a directory; give a new directory`);
    entries = await readdir(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (entries.length > 0) {
    let marker: { source?: string; runFingerprint?: string } | undefined;
    try {
      marker = JSON.parse(await readFile(path.join(out, MARKER_FILE), 'utf8')) as typeof marker;
    } catch {
      marker = undefined;
    }
    if (!marker || marker.source !== source || marker.runFingerprint !== block.runFingerprint) {
      throw new DensifyError(`\`out\` ${out} is not empty and holds no unfinished densify of ${source}; give a new or empty directory (nothing there was changed)`);
    }
    // our own unfinished run: its temp files are never valid, its shards are rewritten below
    for (const name of entries) if (name.startsWith('.') && name.endsWith('.tmp')) await rm(path.join(out, name), { force: true });
  }
  await mkdir(out, { recursive: true });
  await writeFileAtomic(path.join(out, MARKER_FILE), JSON.stringify({ source, runFingerprint: block.runFingerprint }) + '\n');
}

/** Dense values (name → f32) of every tensor a factored layer dropped, reconstructed from its factors. */
async function denseTensors(model: CompressedModel, layer: LayerLayout, types: ExpertMatrixType[], engine: Engine): Promise<Map<string, Float32Array>> {
  const E = model.config.numExperts;
  const moe = layer.moe!;
  const out = new Map<string, Float32Array>();
  const expert = async (e: number, type: ExpertMatrixType) =>
    model.isFactored(layer.index, type) ? materialise(engine, await model.factors(layer.index, e, type)) : model.readExpert(layer.index, e, type);
  if (moe.experts) {
    for (let e = 0; e < E; e++) for (const t of types) out.set(moe.experts[e][t], await expert(e, t));
    return out;
  }
  const fused = moe.fused!;
  if (types.includes('gate') || types.includes('up')) out.set(fused.gateUp, await fuseGateUp(model.config, fused, (e) => expert(e, 'gate'), (e) => expert(e, 'up')));
  if (types.includes('down')) out.set(fused.down, await fuseDown(model.config, fused, (e) => expert(e, 'down')));
  return out;
}

/** [p, d] of per-expert tensors (gate/up [I, H], down [H, I]), the fused tensors' shapes in their form. */
function denseShape(model: CompressedModel, layer: LayerLayout, name: string): number[] {
  const { hiddenSize: H, expertIntermediateSize: I } = model.config;
  const fused = layer.moe?.fused;
  if (fused && name === fused.gateUp) return fusedExpertShapes(model.config, fused).gateUp;
  if (fused && name === fused.down) return fusedExpertShapes(model.config, fused).down;
  return layer.moe?.experts?.some((x) => x.down === name) ? [H, I] : [I, H];
}

/** Turn the factored output `dir` into a dense one at `opts.out`. */
export async function densify(dir: string, opts: DensifyOptions): Promise<DensifyResult> {
  const started = Date.now();
  const source = path.resolve(dir);
  const out = path.resolve(opts.out);
  const model = await loadCompressed(source);
  let ownedEngine: Engine | undefined;
  let store: TensorStore | undefined;
  try {
    const block = model.block;
    if (block.storage !== 'factored') throw new DensifyError(`${dir} is already a dense rfid-moe output: Hugging Face loaders read it as it is`);
    await claimOutputDir(out, source, block);
    const engine = typeof opts.engine === 'object' ? opts.engine : (ownedEngine = (await createEngine(opts.engine ?? 'auto', { threads: opts.threads })).engine);
    store = await TensorStore.open(source);

    // the factored tensors of each compressed layer live in one shard; its dense tensors go there
    const layersByFile = new Map<string, number[]>();
    for (const l of block.layers) {
      const [type, t] = Object.entries(l.types)[0];
      const prefix = moePrefix(model.layout.layers[l.layer].moe!.router);
      const basis = store.tensor(t?.groups[0].structure === 'base-delta' ? groupBaseName(prefix, type, 0) : basisName(prefix, type, 0));
      if (!basis) throw new DensifyError(`${dir}: layer ${l.layer} has no factored ${type} tensors; the output is damaged — recompress the model`);
      layersByFile.set(basis.file, [...(layersByFile.get(basis.file) ?? []), l.layer]);
    }
    const files = [...store.files];
    const byFile = new Map<string, string[]>(files.map((f) => [f, []]));
    for (const name of store.tensorNames()) byFile.get(store.tensor(name)!.file)?.push(name);

    let reconstructed = 0;
    let spent = 0;
    for (const [i, file] of files.entries()) {
      opts.onProgress?.({ shard: i, of: files.length, file: path.basename(file), etaSeconds: i === 0 ? null : (spent / i) * (files.length - i) });
      const t0 = Date.now();
      const plan: TensorPlan[] = [];
      const values = new Map<string, Float32Array>();
      const copied: string[] = [];
      for (const name of byFile.get(file) ?? []) {
        if (/\.rfid\./.test(name)) continue;
        const t = store.tensor(name)!;
        plan.push({ name, dtype: t.dtype, shape: t.shape });
        copied.push(name);
      }
      for (const l of layersByFile.get(file) ?? []) {
        const layout = model.layout.layers[l];
        const types = Object.keys(block.layers.find((b) => b.layer === l)!.types) as ExpertMatrixType[];
        const dense = await denseTensors(model, layout, types, engine);
        for (const name of droppedTensors(layout, types)) {
          const v = dense.get(name);
          if (!v) throw new DensifyError(`layer ${l}: no reconstruction for ${name}`);
          plan.push({ name, dtype: block.factorDtype, shape: denseShape(model, layout, name) });
          values.set(name, v);
        }
        reconstructed += model.config.numExperts * types.length;
      }
      const writer = await SafetensorsWriter.create(path.join(out, path.basename(file)), plan);
      try {
        for (const [name, v] of values) await writer.write(name, v);
        for (const name of copied) await writer.write(name, await store.readBytes(name));
        await writer.finish();
      } catch (err) {
        await writer.abort();
        throw err;
      }
      spent += (Date.now() - t0) / 1000;
    }
    await writeIndex(out, files.map((f) => path.basename(f)));
    const written = [...files.map((f) => path.basename(f)), INDEX_FILE, ...(await copyModelFiles(source, out, [...COPIED_FILES, STATS_FILE]))];
    // the dense files' own hashes (the source weights' hashes carry over: same source model)
    const hashes = await hashFiles(out, written);
    const denseBlock: RfidBlock = {
      ...block,
      files: Object.fromEntries(Object.entries(hashes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      storage: 'dense',
      densified: { from: source, note: 'written by `rfid-moe densify` from the factored output: every compressed expert matrix is A·B + P·η of the stored factors, in the factor dtype' },
    };
    // last: config.json makes the directory complete
    const text = outputConfigText(await readFile(path.join(source, CONFIG_FILE), 'utf8'), denseBlock);
    await writeFileAtomic(path.join(out, CONFIG_FILE), text);
    await rm(path.join(out, MARKER_FILE), { force: true });
    return { out, shards: files.length, reconstructed, seconds: (Date.now() - started) / 1000 };
  } finally {
    await store?.close();
    await model.close();
    ownedEngine?.dispose();
  }
}
