/**
 * Stage 5, write: the files of a compressed directory besides the per-layer shards' contents —
 * which tensors go to which shard, the index, the copied tokenizer files, the `rfid_moe` config
 * block — and the clean-up of a killed run's temp files.
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { DType } from '../../io/dtype.js';
import { TOOL_VERSION } from '../../version.js';
import { canonical } from '../hashing.js';
import { modelIdentity } from '../output/config-json.js';
import { formatVersionFor, type LayerBlock, type RfidBlock } from '../output/block.js';
import { CHAT_TEMPLATE_DIR, NAME_TEMPLATES } from '../output/names.js';
import { recipeFingerprint, type Recipe } from '../recipe.js';
import type { CalibrationPlan } from './calibrate.js';
import { moeLayers } from './plan.js';
import { layersPrefix } from '../../checkpoint/layout.js';

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Tensors of each shard: decoder layer l → shard l, everything else (a multimodal model's vision tower too) → the last shard. */
export function tensorsByShard(ckpt: Checkpoint): string[][] {
  const L = ckpt.config.numLayers;
  const shards: string[][] = Array.from({ length: L + 1 }, () => []);
  const layerName = new RegExp(`^${escapeRegExp(layersPrefix(ckpt.layout))}(\\d+)\\.`);
  for (const name of ckpt.tensorNames()) {
    const m = layerName.exec(name);
    const l = m ? Number(m[1]) : L;
    shards[l < L ? l : L].push(name);
  }
  return shards;
}

export { writeIndex } from '../output/index-file.js';

export { copyModelFiles, modelFilesToCopy } from '../output/model-files.js';

export function gatheredDtype(ckpt: Checkpoint, recipe: Recipe): DType {
  const l = moeLayers(ckpt)[0];
  const moe = l.moe!;
  const name = moe.experts ? moe.experts[0][recipe.matrixTypes[0]] : recipe.matrixTypes[0] === 'down' ? moe.fused!.down : moe.fused!.gateUp;
  return ckpt.tensor(name)?.dtype ?? 'F32';
}

/** Temp files of atomic writes a killed run left behind (never renamed into place, so never valid). */
export async function removeStrayTempFiles(out: string): Promise<void> {
  for (const dir of [out, path.join(out, CHAT_TEMPLATE_DIR)]) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) if (name.startsWith('.') && name.endsWith('.tmp')) await rm(path.join(dir, name), { force: true });
  }
}

/** The `rfid_moe` block of config.json: how to read the factored tensors, and what made them. */
export function rfidBlock(args: {
  ckpt: Checkpoint;
  recipe: Recipe;
  storage: 'factored' | 'dense';
  runFingerprint: string;
  modelFingerprint: string;
  factorDtype: 'F16' | 'BF16' | 'F32';
  calibration: CalibrationPlan;
  statsSha256: string;
  layers: LayerBlock[];
  files: RfidBlock['files'];
  sourceSha256: RfidBlock['sourceSha256'];
}): RfidBlock {
  const { ckpt, recipe } = args;
  return {
    format: 'rfid-moe',
    version: formatVersionFor(args.layers),
    tool: `rfid-moe ${TOOL_VERSION}`,
    storage: args.storage,
    runFingerprint: args.runFingerprint,
    modelFingerprint: args.modelFingerprint,
    recipeFingerprint: recipeFingerprint(recipe),
    recipe: JSON.parse(JSON.stringify(canonical(recipe))) as Record<string, unknown>,
    factorDtype: args.factorDtype,
    expertLayout: moeLayers(ckpt)[0].moe!.fused ? 'fused' : 'per-expert',
    matrixTypes: [...recipe.matrixTypes],
    calibration: { source: args.calibration.source, description: args.calibration.description, statsSha256: args.statsSha256 },
    tensorNames: { basis: NAME_TEMPLATES.basis, coefficients: NAME_TEMPLATES.coefficients, residual: NAME_TEMPLATES.residual },
    layers: args.layers,
    source: modelIdentity(ckpt.config),
    files: args.files,
    sourceSha256: args.sourceSha256,
  };
}
