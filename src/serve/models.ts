/**
 * The models a server hosts: each directory is validated at startup (config, tensors, shapes,
 * file sizes, tokenizer) without loading its weights, and a broken one is refused with its
 * reason while the others are served. `ModelStore` is the residency manager's loader: a load
 * opens the checkpoint and reads every weight into memory (matrices stored as BF16 stay BF16
 * unless `bf16Weights` is off; the rest f32), so a request after
 * it never touches the disk; a factored compressed model additionally materialises its hottest
 * experts densely within its memory share (the checkpoint's routing frequencies).
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Checkpoint, SamplingDefaults } from '../checkpoint/types.js';
import { CompressedModel } from '../compressed/load.js';
import { openModel } from '../compressed/open-model.js';
import type { Engine } from '../engine/types.js';
import { assertRunnable } from '../runtime/checkpoint-weights.js';
import { BatchDecoder } from '../runtime/generation/decoder.js';
import { textCodec } from '../runtime/generation/codec.js';
import { residentWeightBytes, weightProviderOf } from '../runtime/index.js';
import { loadTokenizer, type LoadedTokenizer } from '../tokens/tokenizer.js';
import { encodeInPlace, type OffThreadEncoder } from './encode-off-thread.js';
import { LiveExpertProvider } from './expert-residency.js';
import type { LoadedModel, ModelLoader } from './residency.js';
import { kvCacheShape, kvSlotBoundBytes, kvWindows, linearCacheLayout, type LinearCacheLayout } from '../runtime/kv-cache.js';
import { DEFAULT_MAX_PREFILL_TOKENS } from '../runtime/generation/decoder.js';
import { TensorArena } from '../io/tensor-buffers.js';
import type { MappedFiles } from '../io/file-map.js';
import { detectToolCallFormat, type ToolCallFormat } from './tools/formats/index.js';
import { defaultReasoningParser, type ReasoningParser } from './reasoning.js';

export interface ModelSpec {
  /** the id clients use in "model" */
  id: string;
  dir: string;
}

export interface ServedModel {
  id: string;
  dir: string;
  kind: 'original' | 'compressed-factored' | 'compressed-dense';
  /** bytes of the weights once loaded (f32; BF16, and MXFP4 or FP8 experts, where kept as stored: residentWeightBytes), materialised experts included */
  estimatedBytes: number;
  /** bytes of the stored tensors on disk */
  diskBytes: number;
  contextLength: number;
  tokenizer: LoadedTokenizer;
  /** the tokenizer's chat template (Jinja), null when it has none */
  chatTemplate: string | null;
  /** how the model writes tool calls, for tool_choice "auto": the server's --tool-call-parser, else what the template writes (null: unknown) */
  toolCallFormat: ToolCallFormat | null;
  /** how the model's reasoning is told from its answer in chat responses: the server's --reasoning-parser (null: not told apart) */
  reasoningParser: ReasoningParser | null;
  /** under tool_choice "none" the chat template gets no tools (ServeOptions.excludeToolsWhenToolChoiceNone) */
  excludeToolsWhenToolChoiceNone: boolean;
  /** vLLM's GET /tokenizer_info: tokenizer_config.json as JSON, special tokens as their text (tokenizerInfoOf) */
  tokenizerInfo: Record<string, unknown>;
  specialTokens: { bos: string | null; eos: string | null };
  /** the ids generation stops at (ModelConfig.eosTokenIds: generation_config.json's, else config.json's) */
  eosTokenIds: readonly number[];
  /** config.json's BOS id: what an empty prompt starts from (null: an empty prompt is refused) */
  bosTokenId: number | null;
  /** a request's text as ids, as tokenizer.encode gives them; long texts off the event loop (encode-off-thread.ts) */
  encode(text: string, addSpecialTokens: boolean): Promise<Int32Array>;
  /** generation_config.json's temperature, top_p, top_k, min_p, repetition_penalty: a request's defaults (ModelConfig.samplingDefaults) */
  samplingDefaults: SamplingDefaults;
  /** token ids are 0 … vocabSize − 1 (a request's token-id prompt is checked before any load) */
  vocabSize: number;
  /** unix seconds when the server registered it */
  created: number;
  /** bytes of densely materialised experts a factored model gets within its share */
  materialiseBytes: number;
  /**
   * decoder layers and key/value width per position (each layer's where layers differ, values
   * valueHeadDim for every headDim where value heads are narrower), each layer's sliding window,
   * the most positions a decoding step adds to a sequence (the decoder's prefill chunk), and its
   * linear-attention layers' states (a fixed size a slot), for the KV-cache reservation of a
   * request (kvSlotBoundBytes)
   */
  kv: { layers: number; width: number; valuesAreKeys: boolean; windows: Array<number | null>; maxStep: number; layerWidths?: number[]; headDim: number; valueHeadDim?: number; linear?: LinearCacheLayout };
}

export interface RefusedModel {
  id: string;
  dir: string;
  reason: string;
}

export interface LoadedHandle {
  checkpoint: Checkpoint;
  decoder: BatchDecoder;
  /** a factored model's expert residency (which experts run densely), null otherwise */
  experts: LiveExpertProvider | null;
  /** the checkpoint's files where its weights are views of them (ModelStoreOptions.mapWeights), else null */
  mapped: MappedFiles | null;
}

/**
 * `dir` or `name=dir`; the id defaults to the directory's base name. A spec with '=' whose left
 * side looks like a path is a directory name containing '='.
 */
export function parseModelSpec(arg: string): ModelSpec {
  const eq = arg.indexOf('=');
  if (eq > 0 && !arg.slice(0, eq).includes('/')) return { id: arg.slice(0, eq), dir: arg.slice(eq + 1) };
  return { id: path.basename(path.resolve(arg)), dir: arg };
}

/** An added-token object ({content, lstrip, …}) as its text; any other value as it is. */
function asTokenText(v: unknown): unknown {
  return v && typeof v === 'object' && !Array.isArray(v) && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : v;
}

/** A special token of tokenizer_config.json (its text, or an added-token object) as its text; null when absent. */
function tokenString(v: unknown): string | null {
  const text = asTokenText(v);
  return typeof text === 'string' ? text : null;
}

async function tokenizerConfig(dir: string): Promise<Record<string, unknown>> {
  const file = path.join(dir, 'tokenizer_config.json');
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * The model's chat template as transformers finds it: chat_template.jinja (where transformers 5
 * saves it) over tokenizer_config.json's chat_template (a string, or a list of named templates
 * whose "default" is used).
 */
async function chatTemplateOf(dir: string, config: Record<string, unknown>): Promise<string | null> {
  const file = path.join(dir, 'chat_template.jinja');
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${file} cannot be read (${(err as Error).message})`);
  }
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  // a list of named templates: the "default" one
  if (Array.isArray(t)) {
    const named = t.find((x) => x && typeof x === 'object' && (x as { name?: unknown }).name === 'default') as { template?: unknown } | undefined;
    return typeof named?.template === 'string' ? named.template : null;
  }
  return null;
}

/** A model directory's chat template and the special tokens templates write (bos_token, eos_token), read as the server reads them. */
export async function chatSetupOf(dir: string): Promise<{ template: string | null; special: { bos: string | null; eos: string | null } }> {
  const config = await tokenizerConfig(dir);
  return { template: await chatTemplateOf(dir, config), special: specialTokensOf(config) };
}

/** The special tokens chat templates write (bos_token, eos_token), as tokenizer_config.json gives them. */
function specialTokensOf(config: Record<string, unknown>): { bos: string | null; eos: string | null } {
  return { bos: tokenString(config.bos_token), eos: tokenString(config.eos_token) };
}

/**
 * What vLLM's GET /tokenizer_info answers: the tokenizer's configuration as tokenizer_config.json
 * holds it, with each special token as its text (the file may store it as an added-token object),
 * the table of added tokens left out (tokenizer.json has it), the chat template as it is found
 * (chat_template.jinja or the config), and eos/bos/pad tokens always present (null when none;
 * clients such as lm-evaluation-harness probe eos_token to detect the endpoint).
 */
export function tokenizerInfoOf(config: Record<string, unknown>, chatTemplate: string | null, eosFallback: string | null): Record<string, unknown> {
  const info: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    if (key === 'added_tokens_decoder' || key === 'chat_template') continue;
    info[key] = Array.isArray(value) ? value.map((v) => asTokenText(v)) : asTokenText(value);
  }
  info.tokenizer_class = typeof config.tokenizer_class === 'string' ? config.tokenizer_class : 'PreTrainedTokenizerFast';
  info.eos_token = tokenString(config.eos_token) ?? eosFallback;
  info.bos_token = tokenString(config.bos_token);
  info.pad_token = tokenString(config.pad_token);
  info.chat_template = chatTemplate;
  return info;
}

function storedBytes(ckpt: Checkpoint): number {
  return ckpt.tensorNames().reduce((s, name) => s + ckpt.tensor(name)!.byteLength, 0);
}

/**
 * Validate one model directory without loading its weights. `shareBytes` is the memory share a
 * factored model may fill with densely materialised experts.
 */
export async function inspectServedModel(
  spec: ModelSpec,
  shareBytes: number,
  opts: {
    bf16Weights?: boolean;
    materialiseExperts?: boolean;
    encoder?: OffThreadEncoder;
    toolCallFormat?: ToolCallFormat | null;
    /** null: none; undefined: the model's default (defaultReasoningParser) */
    reasoningParser?: ReasoningParser | null;
    /** a chat template to use instead of the model's own (ServeOptions.chatTemplate) */
    chatTemplate?: string;
    /** caps the context below max_position_embeddings (ServeOptions.maxModelLen) */
    maxModelLen?: number;
    excludeToolsWhenToolChoiceNone?: boolean;
    /** the decoder's prompt tokens a step (ModelStoreOptions.maxPrefillTokens; default the decoder's) */
    maxPrefillTokens?: number;
  } = {},
): Promise<ServedModel> {
  const info = await stat(spec.dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`${spec.dir} is not a directory; pass a checkpoint directory (config.json + *.safetensors + tokenizer.json)`);
  const ckpt = await openModel(spec.dir);
  try {
    assertRunnable(ckpt);
    const tokenizer = await loadTokenizer(spec.dir);
    const tconf = await tokenizerConfig(spec.dir);
    const fromConfig = ckpt.config.raw.max_position_embeddings;
    const declared = typeof fromConfig === 'number' && fromConfig > 1 ? fromConfig : 4096;
    const contextLength = Math.min(declared, opts.maxModelLen ?? declared);
    const kvShape = kvCacheShape(ckpt.config);
    const linear = linearCacheLayout(ckpt.config);
    const kv: ServedModel['kv'] = {
      layers: ckpt.config.numLayers,
      width: kvShape.width,
      valuesAreKeys: kvShape.valuesAreKeys,
      windows: kvWindows(ckpt.config),
      maxStep: opts.maxPrefillTokens ?? DEFAULT_MAX_PREFILL_TOKENS,
      ...(kvShape.layerWidths ? { layerWidths: kvShape.layerWidths } : {}),
      headDim: kvShape.headDim,
      ...(kvShape.valueHeadDim !== undefined ? { valueHeadDim: kvShape.valueHeadDim } : {}),
      ...(linear ? { linear } : {}),
    };
    const chatTemplate = opts.chatTemplate ?? (await chatTemplateOf(spec.dir, tconf));
    const eosId = ckpt.config.eosTokenIds[0];
    const eosFallback = eosId === undefined ? null : tokenizer.tokenizer.decode([eosId], { skip_special_tokens: false });
    let kind: ServedModel['kind'] = 'original';
    let materialiseBytes = 0;
    // matrices stored as BF16 are held so (a factored model's factors too), unless widened
    const base = residentWeightBytes(ckpt, { bf16Weights: opts.bf16Weights ?? true });
    if (ckpt instanceof CompressedModel) {
      kind = ckpt.storage === 'factored' ? 'compressed-factored' : 'compressed-dense';
      // materialiseExperts false: every expert stays factored (no dense copies, nothing planned for them)
      if (kind === 'compressed-factored' && (opts.materialiseExperts ?? true)) {
        const { hiddenSize: H, expertIntermediateSize: I, numExperts } = ckpt.config;
        // held as the server's LiveExpertProvider holds them: BF16 when it keeps BF16 weights and every factor is BF16
        const perExpert = 3 * H * I * ((opts.bf16Weights ?? true) && ckpt.materialisesBf16() ? 2 : 4);
        const allDense = ckpt.block.layers.length * numExperts * perExpert;
        // Whole experts only (the provider materialises whole ones), in the room the share leaves
        // after one full-context sequence's KV cache: an estimate that filled the share exactly
        // left no room for any request's KV cache, and a budget sized to the model refused every
        // request.
        const kvReserve = kvSlotBoundBytes(kv.layers, kv.width, contextLength, contextLength, kv.valuesAreKeys, kv);
        const room = Math.max(0, shareBytes - base - kvReserve);
        materialiseBytes = Math.min(allDense, Math.floor(room / perExpert) * perExpert);
      }
    }
    return {
      id: spec.id,
      dir: path.resolve(spec.dir),
      kind,
      estimatedBytes: base + materialiseBytes,
      diskBytes: storedBytes(ckpt),
      contextLength,
      tokenizer,
      chatTemplate,
      toolCallFormat: opts.toolCallFormat === undefined ? detectToolCallFormat(chatTemplate) : opts.toolCallFormat,
      reasoningParser: opts.reasoningParser === undefined ? defaultReasoningParser(ckpt.config.family) : opts.reasoningParser,
      excludeToolsWhenToolChoiceNone: opts.excludeToolsWhenToolChoiceNone ?? false,
      tokenizerInfo: tokenizerInfoOf(tconf, chatTemplate, eosFallback),
      specialTokens: specialTokensOf(tconf),
      eosTokenIds: ckpt.config.eosTokenIds,
      bosTokenId: ckpt.config.bosTokenId,
      encode: async (text, addSpecialTokens) => (opts.encoder ? opts.encoder.encode(tokenizer, text, addSpecialTokens) : encodeInPlace(tokenizer, text, addSpecialTokens)),
      samplingDefaults: ckpt.config.samplingDefaults,
      vocabSize: ckpt.config.vocabSize,
      created: Math.floor(Date.now() / 1000),
      materialiseBytes,
      kv,
    };
  } finally {
    await ckpt.close();
  }
}

export interface ModelStoreOptions {
  engine: Engine;
  /** requests decoded together per model */
  maxBatchSize: number;
  /** prompt tokens per forward pass across prefilling requests */
  maxPrefillTokens?: number;
  /** weight matrices stored as BF16 stay BF16 in memory (default true; see CheckpointWeightsOptions) */
  bf16Weights?: boolean;
  /**
   * Weights kept as stored are views of the checkpoint's files mapped into memory (default true;
   * Checkpoint.mapReads): a load from the page cache is page-table work, not a copy into fresh
   * memory, and the model is not held twice. False reads them into the process's own memory, for
   * files that may be rewritten in place while the server runs.
   */
  mapWeights?: boolean;
  /** a problem that does not stop a model from serving (default: ignored) */
  onWarning?(message: string): void;
}

/** Loads and unloads served models for the residency manager. */
export class ModelStore implements ModelLoader<LoadedHandle> {
  constructor(
    private readonly models: ReadonlyMap<string, ServedModel>,
    private readonly opts: ModelStoreOptions,
  ) {}

  async load(id: string): Promise<LoadedModel<LoadedHandle>> {
    const model = this.models.get(id);
    if (!model) throw new Error(`model ${id} is not served`);
    const checkpoint = await openModel(model.dir);
    // every tensor read now is held until the model is unloaded: factors of a few hundred KiB are
    // packed into shared huge pages (TensorArena), reads after the load each get their own
    const arena = new TensorArena();
    checkpoint.packReads?.(arena);
    let mapped: MappedFiles | null = null;
    try {
      mapped = (this.opts.mapWeights ?? true) ? (checkpoint.mapReads?.() ?? null) : null;
      // the disk reads, on a worker thread, before anything below touches a page on this one
      await mapped?.populate();
      const decoderOptions = {
        maxBatchSize: this.opts.maxBatchSize,
        contextLength: model.contextLength,
        // never more a step than the KV-cache reservation of its requests assumed (ServedModel.kv.maxStep)
        maxPrefillTokens: Math.min(this.opts.maxPrefillTokens ?? model.kv.maxStep, model.kv.maxStep),
        tokenizer: textCodec(model.tokenizer),
      };
      if (checkpoint instanceof CompressedModel && checkpoint.storage === 'factored') {
        // factored experts, the hottest materialised within the share (checkpoint, then live counts)
        const experts = new LiveExpertProvider(checkpoint, this.opts.engine, {
          denseBytes: model.materialiseBytes,
          bf16: this.opts.bf16Weights ?? true,
          onError: (err) => this.opts.onWarning?.(`model ${id}: materialising its hottest experts failed, they stay factored: ${err instanceof Error ? err.message : String(err)}`),
        });
        // a cold request waits for the reads, not for building the dense experts (~0.1 s each)
        await experts.loadAll({ materialise: 'background' });
        const decoder = new BatchDecoder(experts, this.opts.engine, { ...decoderOptions, keepWeights: false });
        return { handle: { checkpoint, decoder, experts, mapped }, bytes: model.estimatedBytes };
      }
      const provider = weightProviderOf(checkpoint, { bf16Weights: this.opts.bf16Weights ?? true });
      const decoder = new BatchDecoder(provider, this.opts.engine, { ...decoderOptions, keepWeights: true });
      await readEverything(decoder, checkpoint);
      return { handle: { checkpoint, decoder, experts: null, mapped }, bytes: model.estimatedBytes };
    } catch (err) {
      mapped?.drop();
      await checkpoint.close();
      throw err;
    } finally {
      checkpoint.packReads?.(null);
      arena.close();
    }
  }

  async unload(_id: string, handle: LoadedHandle): Promise<void> {
    await handle.decoder.close();
    await handle.experts?.close();
    // the model's memory goes now, not when the collector frees its weights
    handle.mapped?.drop();
    await handle.checkpoint.close();
  }
}

/**
 * Read every weight through the decoder's resident provider (which holds the whole embedding
 * table and lm_head once read), so the load, not the first request, pays for the disk and any
 * widening to f32.
 */
async function readEverything(decoder: BatchDecoder, ckpt: Checkpoint): Promise<void> {
  const provider = decoder.provider;
  const { numLayers, numExperts, vocabSize } = ckpt.config;
  await provider.embed(Int32Array.of(0));
  await provider.finalNorm();
  await provider.lmHeadRows(0, Math.min(1, vocabSize));
  for (let l = 0; l < numLayers; l++) {
    const layer = await provider.layer(l);
    if (layer.mlp.kind === 'moe') for (let e = 0; e < numExperts; e++) await layer.mlp.moe.expert(e);
  }
}
