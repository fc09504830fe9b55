/**
 * The `rfid_moe` block that a compressed output adds to config.json: what was done (tool,
 * recipe, calibration), how the tensors are stored, and per layer and matrix type the groups
 * with their ranks, effective ranks, frequency shares, fused scores and residual descriptors.
 * The loader needs the groups (which experts share a basis) and the descriptors (P is not
 * stored); everything else is for people and tools reading the config.
 *
 * It contains no timings, so an interrupted and resumed run writes the same bytes.
 */
import { z } from 'zod';
import { RfidMoeError } from '../../errors.js';

const descriptorSchema = z.object({
  scheme: z.enum(['tile', 'random']),
  q: z.number().int().positive(),
  length: z.number().int().positive(),
  seed: z.number().int().min(0),
});

export const groupBlockSchema = z.object({
  /** expert indices sharing this basis, in stacking order */
  experts: z.array(z.number().int().min(0)).min(1),
  rank: z.number().int().positive(),
  erank: z.number(),
  /** routing-frequency share F_g, effective-rank share E_g, fused score C_g */
  frequencyShare: z.number(),
  erankShare: z.number(),
  fusedScore: z.number(),
  residual: descriptorSchema.nullable(),
  /**
   * absent: one input-side basis per group (version 1). 'output-basis': Ŵ_e = U_g·C_e, the group
   * tensor `basis` is U_g [p, rank] and each `coeff` is C_e [rank, d]. 'base-delta':
   * Ŵ_e = W̄_g + A_e·B_e, the group tensor `base` is W̄_g [p, d], each expert has `coeff` A_e
   * [p, K_e] and `basis` B_e [K_e, d] with K_e = expertRanks (in the order of `experts`).
   * Blocks with either are written as version 2, which older readers refuse.
   */
  structure: z.enum(['output-basis', 'base-delta']).optional(),
  expertRanks: z.array(z.number().int().positive()).optional(),
}).superRefine((g, ctx) => {
  if ((g.structure === 'base-delta') !== (g.expertRanks !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['expertRanks'], message: 'expertRanks is given exactly for base-delta groups' });
  } else if (g.expertRanks && (g.expertRanks.length !== g.experts.length || Math.max(...g.expertRanks) !== g.rank)) {
    ctx.addIssue({ code: 'custom', path: ['expertRanks'], message: 'expertRanks needs one rank per expert, the largest equal to rank' });
  }
});

export const typeBlockSchema = z.object({
  /** rows p and columns d of one expert matrix of this type */
  p: z.number().int().positive(),
  d: z.number().int().positive(),
  groups: z.array(groupBlockSchema).min(1),
});

export const layerBlockSchema = z.object({
  layer: z.number().int().min(0),
  /** calibration routing counts per expert (the loader preloads the hottest first) */
  routingCounts: z.array(z.number().int().min(0)),
  types: z.partialRecord(z.enum(['gate', 'up', 'down']), typeBlockSchema),
});

export const rfidBlockSchema = z.object({
  format: z.literal('rfid-moe'),
  /** 1: input-side bases only; 2: groups may carry a `structure` (see groupBlockSchema) */
  version: z.union([z.literal(1), z.literal(2)]),
  tool: z.string(),
  /** 'factored': bases/coefficients/residuals; 'dense': reconstructed weights under the original names */
  storage: z.enum(['factored', 'dense']),
  /** hash of (model, recipe, calibration, storage): identifies the run (resume checks it) */
  runFingerprint: z.string(),
  modelFingerprint: z.string(),
  recipeFingerprint: z.string(),
  recipe: z.record(z.string(), z.unknown()),
  /** dtype of the factored tensors (the checkpoint's own where it can be encoded) */
  factorDtype: z.enum(['F32', 'F16', 'BF16']),
  /** how the source stored its experts; the factored output keeps the rest in that form */
  expertLayout: z.enum(['per-expert', 'fused']),
  matrixTypes: z.array(z.enum(['gate', 'up', 'down'])).min(1),
  calibration: z.object({
    source: z.enum(['stats', 'dataset', 'self-sampled']),
    description: z.string(),
    statsSha256: z.string(),
  }),
  tensorNames: z.object({ basis: z.string(), coefficients: z.string(), residual: z.string() }),
  layers: z.array(layerBlockSchema),
  /**
   * hex sha256 of every file the model is made of (shards, index, tokenizer files, statistics),
   * by name relative to the directory; checked by loadCompressed, eval, inspect --verify and
   * compress --resume (src/compressed/verify.ts)
   */
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
  /**
   * hex sha256 of the source weights each output shard was made from (src/compress/source-scan.ts):
   * one per decoder layer, and `rest` for the tensors outside the layers
   */
  sourceSha256: z.object({ layers: z.array(z.string()), rest: z.string() }),
  /**
   * The source model's own model_type and architectures. A factored output's top-level ones name
   * rfid-moe (so Hugging Face loaders refuse it); loaders read the model's from here.
   */
  source: z.object({ modelType: z.string().min(1), architectures: z.array(z.string()).optional() }).optional(),
  /** set when `rfid-moe densify` wrote this dense directory from a factored output */
  densified: z.object({ from: z.string(), note: z.string() }).optional(),
});

export type GroupBlock = z.infer<typeof groupBlockSchema>;

/** The lowest format version that can hold these layers (2 once any group has a structure tag). */
export function formatVersionFor(layers: readonly z.infer<typeof layerBlockSchema>[]): 1 | 2 {
  return layers.some((l) => Object.values(l.types).some((t) => t?.groups.some((g) => g.structure !== undefined))) ? 2 : 1;
}
export type TypeBlock = z.infer<typeof typeBlockSchema>;
export type LayerBlock = z.infer<typeof layerBlockSchema>;
export type RfidBlock = z.infer<typeof rfidBlockSchema>;

export class CompressedFormatError extends RfidMoeError {
  readonly kind = 'CompressedFormatError';
}

/** The format versions this reader understands (rfidBlockSchema's `version`). */
export const READABLE_FORMAT_VERSIONS: readonly number[] = [1, 2];

/** Validates the block read from a config.json; throws CompressedFormatError naming the key. */
export function parseRfidBlock(value: unknown, source: string): RfidBlock {
  // a newer writer's block: say so before the schema reports whatever field it changed
  if (value !== null && typeof value === 'object' && (value as { format?: unknown }).format === 'rfid-moe') {
    const version = (value as { version?: unknown }).version;
    const newest = Math.max(...READABLE_FORMAT_VERSIONS);
    if (typeof version === 'number' && Number.isInteger(version) && version > newest) {
      throw new CompressedFormatError(
        `${source}: written in rfid-moe format version ${version}, and this rfid-moe reads versions ${READABLE_FORMAT_VERSIONS.join(' and ')} only; upgrade rfid-moe to open it (npm install rfid-moe@latest), or recompress the model with this version`,
      );
    }
  }
  const result = rfidBlockSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new CompressedFormatError(
      `${source}: the rfid_moe block is invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}; the directory was not written by this version of rfid-moe or was edited — recompress the model`,
    );
  }
  return result.data;
}
