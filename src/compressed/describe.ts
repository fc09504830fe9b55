/**
 * What `rfid-moe inspect` says about an rfid-moe output: how it was made (tool, storage, recipe,
 * calibration), and per MoE layer and matrix type the groups that share a basis, their ranks and
 * residual lengths, and the bytes stored against the bytes of the original dense experts.
 * Also the state of an unfinished run (a progress file and no config.json).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { bytesPerElement } from '../io/dtype.js';
import { basisName, coefficientName, expertBasisName, groupBaseName, moePrefix, PROGRESS_FILE, residualName } from '../compress/output/names.js';
import type { CompressedModel } from './load.js';
import { layerTensorPrefix } from '../checkpoint/layout.js';
import { RfidMoeError } from '../errors.js';

export interface CompressedTypeDescription {
  /** rows and columns of one expert matrix */
  p: number;
  d: number;
  groups: Array<{ experts: number[]; rank: number; erank: number; residualLength: number | null; structure?: 'output-basis' | 'base-delta'; expertRanks?: number[] }>;
  /**
   * the structure the factors are stored in: 'per-expert' (groups of one), 'input-basis' (a shared
   * input-side basis), 'output-basis', 'base-delta', or several joined by '+' if the groups differ
   */
  structure: string;
  /** bytes of this type's stored tensors in this layer (bases, coefficients, residuals; or dense) */
  storedBytes: number;
  /** bytes the original dense experts of this type took (E·p·d at the factor dtype) */
  originalBytes: number;
}

export interface CompressedLayerDescription {
  layer: number;
  types: Partial<Record<'gate' | 'up' | 'down', CompressedTypeDescription>>;
  /** bytes of every tensor of this decoder layer in the output (attention, router, experts, …) */
  layerBytes: number;
}

export interface CompressedDescription {
  dir: string;
  family: string;
  modelType: string;
  tool: string;
  storage: 'factored' | 'dense';
  factorDtype: string;
  matrixTypes: string[];
  recipe: Record<string, unknown>;
  calibration: { source: string; description: string };
  runFingerprint: string;
  numLayers: number;
  numExperts: number;
  layers: CompressedLayerDescription[];
  totalBytes: number;
  files: { recorded: number; verified: boolean };
}

/** The structure label of a type's groups (see CompressedTypeDescription.structure). */
export function structureOf(groups: ReadonlyArray<{ experts: readonly number[]; structure?: string }>): string {
  const kinds = new Set(groups.map((g) => g.structure ?? (g.experts.length === 1 ? 'per-expert' : 'input-basis')));
  return [...kinds].join('+');
}

export function describeCompressed(model: CompressedModel, verified: boolean): CompressedDescription {
  const block = model.block;
  const width = bytesPerElement(block.factorDtype);
  const bytesOf = (name: string) => model.tensor(name)?.byteLength ?? 0;
  const names = model.tensorNames();
  const layers: CompressedLayerDescription[] = block.layers.map((l) => {
    const moe = model.layout.layers[l.layer].moe!;
    const prefix = moePrefix(moe.router);
    const types: CompressedLayerDescription['types'] = {};
    for (const [type, t] of Object.entries(l.types) as Array<['gate' | 'up' | 'down', NonNullable<(typeof l.types)['gate']>]>) {
      let stored = 0;
      if (block.storage === 'factored') {
        t.groups.forEach((g, gi) => {
          stored += bytesOf(g.structure === 'base-delta' ? groupBaseName(prefix, type, gi) : basisName(prefix, type, gi));
          for (const e of g.experts) {
            stored += bytesOf(coefficientName(prefix, type, e)) + (g.residual ? bytesOf(residualName(prefix, type, e)) : 0);
            if (g.structure === 'base-delta') stored += bytesOf(expertBasisName(prefix, type, e));
          }
        });
      } else {
        stored = model.config.numExperts * t.p * t.d * width;
      }
      types[type] = {
        p: t.p,
        d: t.d,
        groups: t.groups.map((g) => ({ experts: g.experts, rank: g.rank, erank: g.erank, residualLength: g.residual ? g.residual.q : null, ...(g.structure ? { structure: g.structure } : {}), ...(g.expertRanks ? { expertRanks: g.expertRanks } : {}) })),
        structure: block.storage === 'factored' ? structureOf(t.groups) : 'dense',
        storedBytes: stored,
        originalBytes: model.config.numExperts * t.p * t.d * width,
      };
    }
    const layerPrefix = layerTensorPrefix(model.layout, l.layer);
    return { layer: l.layer, types, layerBytes: names.filter((n) => n.startsWith(layerPrefix)).reduce((a, n) => a + bytesOf(n), 0) };
  });
  return {
    dir: model.dir,
    family: model.config.family,
    modelType: model.config.modelType,
    tool: block.tool,
    storage: block.storage,
    factorDtype: block.factorDtype,
    matrixTypes: [...block.matrixTypes],
    recipe: block.recipe,
    calibration: { source: block.calibration.source, description: block.calibration.description },
    runFingerprint: block.runFingerprint,
    numLayers: model.config.numLayers,
    numExperts: model.config.numExperts,
    layers,
    totalBytes: names.reduce((a, n) => a + bytesOf(n), 0),
    files: { recorded: Object.keys(block.files).length, verified },
  };
}

export class UnfinishedRunError extends RfidMoeError {
  readonly kind = 'UnfinishedRunError';
}

/**
 * When `dir` holds an unfinished compression run (progress file, no config.json), an error that
 * says so and how to finish it; undefined otherwise.
 */
export async function unfinishedRun(dir: string): Promise<UnfinishedRunError | undefined> {
  let progress: { layers?: Record<string, unknown>; modelDir?: string };
  try {
    await readFile(path.join(dir, 'config.json'));
    return undefined;
  } catch {
    // no config.json: maybe a run in progress or interrupted
  }
  try {
    progress = JSON.parse(await readFile(path.join(dir, PROGRESS_FILE), 'utf8')) as typeof progress;
  } catch {
    return undefined;
  }
  const done = Object.keys(progress.layers ?? {}).length;
  return new UnfinishedRunError(
    `${dir} is an unfinished run: rerun with \`resume\` (the same rfid-moe compress command: model ${progress.modelDir ?? '<model>'}, \`out\` ${dir}, the same options) to finish it; ${done} layer(s) are done. It is not a usable model until then`,
  );
}
