/**
 * Continuous batching: one `BatchDecoder` per loaded model decodes every request submitted to it
 * together. Between two forward passes it drops finished and aborted requests (freeing their KV
 * slots) and admits waiting ones; each forward pass then runs, in ONE ragged batch, a chunk of the
 * prompt of each request still in prefill and the newest token of each request in decode. Every
 * request gets its own slot of a shared `KvCache`, its own seeded sampler and stop strings, and
 * its own stream of events.
 *
 * Requests beyond `maxBatchSize` wait in FIFO order. A prompt that cannot fit the context is
 * refused at `submit` (ContextLengthError); a generation that reaches the context ends with
 * finishReason 'length'. A prompt whose beginning a live request shares copies those cached
 * positions instead of computing them (shared-prefix.ts). Per-request logits processing
 * (penalties, bias, allowed tokens) is logits-processors.ts; the event stream, generation-stream.ts.
 */
import type { Engine, LogitStatsOut } from '../../engine/types.js';
import { batchFromSequences } from '../batch.js';
import { logitsInto, type LogitsWorkspace } from '../head.js';
import { KvCache, kvCacheShape, kvWindows } from '../kv-cache.js';
import { runDecoder } from '../layerwise.js';
import { ResidentWeights } from '../resident-weights.js';
import type { WeightProvider } from '../weights.js';
import { ContextLengthError, DecoderClosedError, GenerationParamsError } from './errors.js';
import { resolveSampling, Sampler, type SamplingParams } from './sampling.js';
import { StopTextStream, type TextDecoderLike } from './stop.js';
import { MAX_TOP_LOGPROBS, tokenLogprobs, type TokenLogprob } from './logprobs.js';
import { assertPromptIds } from './prompt-ids.js';
import { RequestLogitsProcessor, resolveLogitsProcessing, type LogitsProcessingParams } from './logits-processors.js';
import { GenerationStream, type FinishReason, type GenerationEvent, type GenerationUsage } from './generation-stream.js';
import { longestSharedBeginning } from './shared-prefix.js';
import { GrammarConstraint, startingState, tokenPieces, type GrammarState, type TokenConstraint } from './grammar-constraint.js';
import { TriggeredConstraint } from './triggered-constraint.js';
import { choicePattern, compileRegex, RegexError, RegexPrefix } from './regex-prefix.js';
import { ReasoningGate, type ReasoningFormat } from './reasoning-gate.js';
import { AddressedCallPrefix } from './addressed-call-prefix.js';
import { CallsOrAnswer } from './calls-or-answer.js';
import { TaggedJsonPrefix, type TaggedJsonCalls } from './tagged-json-prefix.js';
import { SchemaError, type TopLevel } from './json-schema.js';


/** Prompt tokens a decoding step runs across the prefilling requests, by default (BatchDecoderOptions.maxPrefillTokens). */
export const DEFAULT_MAX_PREFILL_TOKENS = 512;
export { GenerationStream, type FinishReason, type GenerationEvent, type GenerationUsage };

/** Most bytes of logits a prompt's scoring holds at once, by default (BatchDecoderOptions.promptLogitsBytes). */
const PROMPT_LOGITS_BYTES = 32 * 2 ** 20;

export interface GenerationParams extends SamplingParams, LogitsProcessingParams {
  /** most tokens to generate (default 128); generation also ends at the context length */
  maxNewTokens?: number;
  /** stop strings, matched on the decoded completion text; the text is cut before the match */
  stop?: readonly string[];
  /** keep the stop string (or the stop token's text) that ended generation in the text (vLLM's include_stop_str_in_output; default false) */
  includeStopInText?: boolean;
  /** leave special tokens out of the completion text (default true) */
  skipSpecialTokens?: boolean;
  /**
   * Generate at least this many tokens (default 0): until then the stop token ids cannot be
   * chosen (their logits are -∞) and no stop string ends the text, as vLLM's min_tokens.
   */
  minNewTokens?: number;
  /** token ids that end generation (the id is counted but has no text); default: the model's end-of-sequence ids (ModelConfig.eosTokenIds, generation_config.json's where it names them); [] = never */
  stopTokenIds?: readonly number[];
  /** aborting stops the request at the next step boundary and frees its KV slot */
  signal?: AbortSignal;
  /**
   * Report each generated token's log-probability and this many most likely alternatives
   * (0 … MAX_TOP_LOGPROBS) on its event (logprobs.ts); undefined: none.
   */
  logprobs?: number;
  /**
   * Also report the prompt's log-probabilities, each token given those before it, with this many
   * alternatives (0 … MAX_TOP_LOGPROBS): on the first token's event, null for the first prompt
   * token (nothing predicts it). Costs the output head over every prompt position, in blocks of
   * up to 32 MiB of logits.
   */
  promptLogprobs?: number;
  /**
   * 'json_object' (OpenAI's JSON mode): every token keeps the completion a viable prefix of one
   * JSON object, and the generation ends ('stop') when the object closes, before any minimum
   * length (grammar-constraint.ts). It may still end unfinished at maxNewTokens ('length') or at a
   * stop string. `{ jsonSchema }`: the same, for an object valid under the schema (json-schema.ts
   * says which keywords; others are refused); with `topLevel: 'any'` the value may be any JSON
   * value (an array, say), as vLLM's guided_json allows. `{ regex }`: the completion is a full
   * match of the pattern (vLLM's guided_regex; regex-prefix.ts says which patterns), and it ends
   * when nothing can extend the match, or where the model ends it once it matches; `{ choice }`:
   * exactly one of the strings (guided_choice). Needs the decoder's tokenizer. Default 'text': no
   * constraint.
   */
  responseFormat?: 'text' | 'json_object' | JsonSchemaFormat | RegexFormat | ChoiceFormat | TaggedJsonFormat;
  /**
   * Tool calls the model may write instead of the formatted answer (calls-or-answer.ts): a
   * completion that opens with `start` is a block of calls, held to `held` (a format triggered at
   * `start`; absent: free); any other is the answer, held to responseFormat, which must be given.
   */
  callsInstead?: { start: string; held?: JsonSchemaFormat | RegexFormat | TaggedJsonFormat };
  /**
   * The model may reason between these tags before it answers (`<think>`, `</think>`), and a
   * response format holds only the answer (reasoning-gate.ts; `state`: where the completion
   * starts); `addressedCalls` holds a call the model addresses while it reasons (gpt-oss's).
   * Without either it changes nothing.
   */
  reasoning?: ReasoningFormat;
  /**
   * vLLM's cache_salt: this request's prompt shares a cached beginning only with requests of the
   * same salt (unsalted ones with each other), so one tenant cannot learn from the timing whether
   * another sent the same beginning.
   */
  cacheSalt?: string;
}

/** A completion that fully matches a regular expression (GenerationParams.responseFormat). */
export interface RegexFormat {
  regex: string;
  /** as JsonSchemaFormat's: free text until this, then a match of the pattern (a tool call in a format that is not JSON) */
  trigger?: string;
  once?: boolean;
}

/**
 * Tool calls between fixed tags with JSON arguments, each held to its function's parameters
 * (tagged-json-prefix.ts: DeepSeek's format); `trigger` and `once` as JsonSchemaFormat's.
 */
export interface TaggedJsonFormat {
  taggedJson: TaggedJsonCalls;
  trigger?: string;
  once?: boolean;
}

/** A completion that is exactly one of some strings (GenerationParams.responseFormat). */
export interface ChoiceFormat {
  choice: readonly string[];
}

/** A response held to a JSON schema (GenerationParams.responseFormat). */
export interface JsonSchemaFormat {
  jsonSchema: unknown;
  /** 'object' (default): the value must be an object, as OpenAI's response_format; 'any': any JSON value, as vLLM's guided_json */
  topLevel?: TopLevel;
  /**
   * Free text until the generated text holds this, then a value held to the schema, then free
   * text again until the next occurrence (triggered-constraint.ts): what keeps a tool call the
   * model chooses to make well-formed. The generation does not end when the value closes, unless
   * `once`: then it ends ('stop') when the first held value closes.
   */
  trigger?: string;
  once?: boolean;
  /** no whitespace outside strings (vLLM's disable_any_whitespace); default: at most 32 characters and one line break between two tokens of the JSON */
  compact?: boolean;
}

export interface BatchDecoderOptions {
  /** requests decoded together at most (default 8); more wait */
  maxBatchSize?: number;
  /** positions per sequence, prompt + completion (default: config max_position_embeddings, else 4096) */
  contextLength?: number;
  /** prompt tokens run per forward pass across all prefilling requests (default 512): bounds how long decode steps wait */
  maxPrefillTokens?: number;
  /** decodes completion text (needed for event text and stop strings) */
  tokenizer?: TextDecoderLike;
  /** keep weights in memory across steps (default true); false when the caller's provider manages residency */
  keepWeights?: boolean;
  /** most bytes of logits a prompt's scoring (GenerationParams.promptLogprobs) holds at once (default 32 MiB) */
  promptLogitsBytes?: number;
  /**
   * A request whose prompt begins as a live one's does copies the cached positions they share
   * instead of computing them (default true): the n choices of a request prefill once, and so
   * does a context common to several prompts. Off, every request runs its own prompt (the
   * comparison of bench/shared-prefix.ts).
   */
  sharePrefixes?: boolean;
}

interface Sequence {
  id: number;
  prompt: Int32Array;
  /** prompt tokens already in the cache */
  fed: number;
  generated: number[];
  maxNew: number;
  /** tokens before which no stop id or stop string ends the request */
  minNew: number;
  includeStop: boolean;
  sampler: Sampler;
  /** allowed tokens, logit bias, penalties and the minimum length's held stops; null: none asked for */
  logitsProcessor: RequestLogitsProcessor | null;
  /** the response format's constraint (JSON, regex, a held tool call; grammar-constraint.ts); null: free text */
  constraint: TokenConstraint | null;
  stopIds: ReadonlySet<number>;
  /** alternatives to report with each token's log-probability; null: no log-probabilities */
  logprobs: number | null;
  /** the prompt's log-probabilities as its chunks are fed (null: not asked for), and their alternatives */
  promptLogprobs: Array<TokenLogprob | null> | null;
  promptTop: number;
  /** vLLM's cache_salt (GenerationParams.cacheSalt); null: unsalted */
  cacheSalt: string | null;
  text: StopTextStream;
  slot: number;
  /**
   * A sequence whose prompt begins as this one's, submitted before it: this one waits for it to
   * cache the shared positions, then copies them instead of computing them (null: none, or taken).
   */
  leader: Sequence | null;
  /** the leading positions it copies from the leader */
  sharedPositions: number;
  stream: GenerationStream;
  aborted: boolean;
  detach?: () => void;
}

/** Default positions per sequence when the config gives none. */
const DEFAULT_CONTEXT = 4096;

/**
 * The buffers a step's sampling rows go through (final hidden states, logits, the head's block),
 * kept from step to step: a fresh [rows × vocab] array every step (1 MB at 8 rows of a 32000-token
 * vocabulary) was zero-filled, faulted in and collected again a few hundred times a second. Steps
 * run one at a time, and a sampler reads its row before the next step starts.
 */
class StepBuffers {
  private lastRows = new Float32Array(0);
  private logitRows = new Float32Array(0);
  private rawRow = new Float32Array(0);
  /** the greedy token of one row, from the engine's kernel */
  readonly pick = new Int32Array(1);
  readonly head: LogitsWorkspace = {};

  last(length: number): Float32Array {
    if (this.lastRows.length < length) this.lastRows = new Float32Array(length);
    return this.lastRows.subarray(0, length);
  }

  logits(length: number): Float32Array {
    if (this.logitRows.length < length) this.logitRows = new Float32Array(length);
    return this.logitRows.subarray(0, length);
  }

  /** a copy of one row's raw logits (log-probabilities report them; penalties change the row) */
  raw(row: Float32Array): Float32Array {
    if (this.rawRow.length < row.length) this.rawRow = new Float32Array(row.length);
    const copy = this.rawRow.subarray(0, row.length);
    copy.set(row);
    return copy;
  }

}

export class BatchDecoder {
  readonly provider: WeightProvider;
  readonly maxBatchSize: number;
  readonly contextLength: number;
  private readonly maxPrefillTokens: number;
  private readonly cache: KvCache;
  private readonly waiting: Sequence[] = [];
  private readonly active: Sequence[] = [];
  /** finished sequences whose slots are kept for others to copy their cached prompt from (release) */
  private readonly lingering: Sequence[] = [];
  private running: Promise<void> | null = null;
  private closed = false;
  private nextId = 1;
  private readonly stepBuffers = new StepBuffers();
  /** one row's logitStats, reused by every log-probability this decoder reports */
  private readonly rowStats: LogitStatsOut = { max: new Float64Array(1), sumExp: new Float64Array(1), argmax: new Int32Array(1) };
  /**
   * Greedy rows' tokens from the engine's kernel: the JavaScript scan took ~35 µs per row of a
   * 32,000-token vocabulary and ~130 µs at 151,936, 5-6× the kernel's time (npm run bench:argmax).
   */
  private readonly pickGreedy = (row: Float32Array): number => {
    this.engine.kernels.argmaxRows(1, row.length, row, this.stepBuffers.pick);
    return this.stepBuffers.pick[0];
  };
  /**
   * Forward passes run and tokens generated since creation; prompt tokens of the requests served,
   * those the forward passes ran, and those copied from a sequence with the same prompt.
   */
  readonly stats = { steps: 0, generatedTokens: 0, promptTokens: 0, prefillTokens: 0, sharedPrefixTokens: 0 };

  constructor(
    provider: WeightProvider,
    private readonly engine: Engine,
    private readonly opts: BatchDecoderOptions = {},
  ) {
    this.provider = (opts.keepWeights ?? true) && !(provider instanceof ResidentWeights) ? new ResidentWeights(provider) : provider;
    const config = provider.config;
    this.maxBatchSize = opts.maxBatchSize ?? 8;
    if (!Number.isSafeInteger(this.maxBatchSize) || this.maxBatchSize < 1) throw new GenerationParamsError(`maxBatchSize must be a positive integer, got ${opts.maxBatchSize}`);
    const fromConfig = config.raw.max_position_embeddings;
    this.contextLength = opts.contextLength ?? (typeof fromConfig === 'number' && fromConfig > 0 ? fromConfig : DEFAULT_CONTEXT);
    if (!Number.isSafeInteger(this.contextLength) || this.contextLength < 2) throw new GenerationParamsError(`contextLength must be an integer ≥ 2, got ${opts.contextLength}`);
    this.maxPrefillTokens = opts.maxPrefillTokens ?? DEFAULT_MAX_PREFILL_TOKENS;
    const shape = kvCacheShape(config);
    this.cache = new KvCache(config.numLayers, this.maxBatchSize, this.contextLength, shape.width, shape.headDim, shape.valuesAreKeys, { windows: kvWindows(config), layerWidths: shape.layerWidths, valueHeadDim: shape.valueHeadDim });
  }

  /** requests being decoded / waiting for a slot */
  get activeCount(): number {
    return this.active.length;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Bytes held by the KV cache now. */
  get kvCacheBytes(): number {
    return this.cache.allocatedBytes;
  }

  /**
   * Queues a request and returns its event stream. Throws synchronously (before anything runs)
   * for bad parameters (GenerationParamsError), a prompt that does not fit (ContextLengthError)
   * or a closed decoder.
   */
  submit(prompt: ArrayLike<number>, params: GenerationParams = {}): GenerationStream {
    if (this.closed) throw new DecoderClosedError();
    const config = this.provider.config;
    assertPromptIds(prompt, config.vocabSize);
    let ids = Int32Array.from(prompt);
    if (ids.length === 0) {
      if (config.bosTokenId === null) throw new GenerationParamsError('the prompt is empty and the model names no BOS token to start from; give at least one token', 'prompt');
      ids = Int32Array.of(config.bosTokenId);
    }
    if (ids.length >= this.contextLength) throw new ContextLengthError(ids.length, this.contextLength);
    const maxNew = params.maxNewTokens ?? 128;
    if (!Number.isSafeInteger(maxNew) || maxNew < 1) throw new GenerationParamsError(`max new tokens must be a positive integer, got ${String(params.maxNewTokens)}`, 'maxNewTokens');
    const stops = params.stop ?? [];
    if (!Array.isArray(stops) || stops.some((s) => typeof s !== 'string' || s.length === 0)) throw new GenerationParamsError('stop strings must be non-empty strings', 'stop');
    if (stops.length > 0 && !this.opts.tokenizer) throw new GenerationParamsError('stop strings need the decoder to have a tokenizer', 'stop');
    const stopIds = params.stopTokenIds ?? config.eosTokenIds;
    const minNew = params.minNewTokens ?? 0;
    if (!Number.isSafeInteger(minNew) || minNew < 0 || minNew > maxNew) throw new GenerationParamsError(`min new tokens must be an integer in [0, max new tokens = ${maxNew}], got ${String(params.minNewTokens)}`, 'minNewTokens');
    const logprobs = params.logprobs ?? null;
    const promptTop = params.promptLogprobs ?? null;
    for (const n of [logprobs, promptTop]) {
      if (n !== null && (!Number.isSafeInteger(n) || n < 0 || n > MAX_TOP_LOGPROBS)) {
        throw new GenerationParamsError(`logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}] (alternatives per token), got ${String(n)}`, 'logprobs');
      }
    }
    const sampler = new Sampler(resolveSampling(params));
    const processing = resolveLogitsProcessing(params, config.vocabSize, { minTokens: minNew, stopIds });
    const constraint = this.constraintOf(params, config.vocabSize, stopIds);

    const id = this.nextId++;
    const cacheSalt = params.cacheSalt ?? null;
    if (cacheSalt !== null && typeof cacheSalt !== 'string') throw new GenerationParamsError('cacheSalt must be a string', 'prompt');
    const shared = this.prefixLeader(ids, promptTop, cacheSalt);
    const seq: Sequence = {
      id,
      prompt: ids,
      fed: 0,
      generated: [],
      maxNew: Math.min(maxNew, this.contextLength - ids.length),
      minNew,
      includeStop: params.includeStopInText ?? false,
      sampler,
      logitsProcessor: processing === null ? null : new RequestLogitsProcessor(processing, ids),
      constraint,
      stopIds: new Set(stopIds),
      logprobs,
      promptLogprobs: promptTop === null ? null : [null],
      promptTop: promptTop ?? 0,
      cacheSalt,
      text: new StopTextStream(this.opts.tokenizer, stops, { includeStop: params.includeStopInText ?? false, skipSpecialTokens: params.skipSpecialTokens ?? true }),
      slot: -1,
      leader: shared?.leader ?? null,
      sharedPositions: shared?.positions ?? 0,
      stream: undefined as unknown as GenerationStream,
      aborted: false,
    };
    seq.stream = new GenerationStream(id, ids.length, () => {
      seq.aborted = true;
      this.kick();
    });
    const signal = params.signal;
    if (signal) {
      if (signal.aborted) seq.aborted = true;
      const onAbort = () => seq.stream.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      seq.detach = () => signal.removeEventListener('abort', onAbort);
    }
    this.waiting.push(seq);
    this.kick();
    return seq.stream;
  }

  /** The constraint of a request's response format (null: free text); GenerationParamsError for a bad format, schema or pattern. */
  private constraintOf(params: GenerationParams, vocabSize: number, stopIds: readonly number[]): TokenConstraint | null {
    const inner = this.answerConstraint(params, vocabSize, stopIds);
    const reasoning = params.reasoning;
    if (reasoning === undefined || reasoning.state === 'answer' || (inner === null && reasoning.addressedCalls === undefined)) return inner;
    const tag = (t: unknown) => typeof t === 'string' && t !== '';
    if (!tag(reasoning.start) || !tag(reasoning.end) || !['reasoning', 'maybe'].includes(reasoning.state)) {
      throw new GenerationParamsError('reasoning must be { start, end, addressedCalls?, state } with non-empty tags and a state of reasoning, answer or maybe', 'responseFormat');
    }
    const tokenizer = this.opts.tokenizer;
    if (!tokenizer) throw new GenerationParamsError('a reasoning format needs the decoder to have a tokenizer (it finds the tags by their text)', 'responseFormat');
    if (reasoning.addressedCalls === undefined) return new ReasoningGate(tokenizer, reasoning, inner);
    const calls = reasoning.addressedCalls;
    if (!tag(calls.trigger) || !Array.isArray(calls.functions) || !tag(calls.bodyOpens) || !Array.isArray(calls.refuses)) {
      throw new GenerationParamsError('reasoning.addressedCalls must be { trigger, functions, bodyOpens, refuses } with non-empty texts', 'responseFormat');
    }
    try {
      new AddressedCallPrefix(calls);
    } catch (err) {
      if (err instanceof SchemaError) throw new GenerationParamsError(err.message, 'responseFormat');
      throw err;
    }
    // a call's header is made of the tokenizer's markers: it is read with the special tokens kept
    return new ReasoningGate(tokenizer, reasoning, inner, this.holder(vocabSize, stopIds, false));
  }

  /** What holds the answer: the response format, or tool calls the model opens instead (null: free text). */
  private answerConstraint(params: GenerationParams, vocabSize: number, stopIds: readonly number[]): TokenConstraint | null {
    const answer = this.formatConstraint(params, vocabSize, stopIds);
    const instead = params.callsInstead;
    if (instead === undefined) return answer;
    if (answer === null) throw new GenerationParamsError('callsInstead needs a response format for the answer (a format triggered at the calls\' opening holds calls alone)', 'responseFormat');
    if (typeof instead.start !== 'string' || instead.start === '') throw new GenerationParamsError('callsInstead.start must be a non-empty string', 'responseFormat');
    if (instead.held !== undefined && instead.held.trigger !== instead.start) throw new GenerationParamsError('callsInstead.held must be triggered at callsInstead.start', 'responseFormat');
    const calls = instead.held === undefined ? null : this.formatConstraint({ ...params, responseFormat: instead.held }, vocabSize, stopIds);
    return new CallsOrAnswer(this.opts.tokenizer!, instead.start, calls, answer);
  }

  /** The response format's constraint, from the first token (null: free text). */
  private formatConstraint(params: GenerationParams, vocabSize: number, stopIds: readonly number[]): TokenConstraint | null {
    const format = params.responseFormat ?? 'text';
    if (format === 'text') return null;
    const given = typeof format === 'object' && format !== null ? format : null;
    const schemaFormat = given !== null && 'jsonSchema' in given ? given : null;
    const pattern = given === null ? undefined : 'regex' in given ? given.regex : 'choice' in given ? given.choice : undefined;
    const tagged = given !== null && 'taggedJson' in given ? given.taggedJson : undefined;
    if (format !== 'json_object' && schemaFormat === null && pattern === undefined && tagged === undefined) {
      throw new GenerationParamsError(`the response format must be 'text', 'json_object', { jsonSchema }, { regex }, { choice } or { taggedJson }, got ${JSON.stringify(format)}`, 'responseFormat');
    }
    if (!this.opts.tokenizer) throw new GenerationParamsError('a response format other than text needs the decoder to have a tokenizer (it judges each token by its text)', 'responseFormat');
    let start: GrammarState;
    try {
      if (tagged !== undefined) start = new TaggedJsonPrefix(tagged);
      else if (pattern === undefined) start = startingState(schemaFormat?.jsonSchema, schemaFormat?.topLevel === 'any' ? 'any' : 'object', schemaFormat?.compact === true);
      else start = new RegexPrefix(compileRegex(typeof pattern === 'string' ? pattern : choicePattern(pattern)));
    } catch (err) {
      if (err instanceof SchemaError || err instanceof RegexError) throw new GenerationParamsError(err.message, 'responseFormat');
      throw err;
    }
    const tokenizer = this.opts.tokenizer;
    const skipSpecial = params.skipSpecialTokens ?? true;
    const hold = this.holder(vocabSize, stopIds, skipSpecial);
    const held = given as { trigger?: unknown; once?: unknown } | null;
    const trigger = held?.trigger;
    if (trigger === undefined) return hold(start);
    if (typeof trigger !== 'string' || trigger.length === 0) throw new GenerationParamsError('responseFormat.trigger must be a non-empty string', 'responseFormat');
    return new TriggeredConstraint(tokenizer, trigger, start, hold, skipSpecial, held?.once === true);
  }

  /** What holds text to a grammar state, reading the completion with special tokens skipped or kept (the tokenizer's pieces alike). */
  private holder(vocabSize: number, stopIds: readonly number[], skipSpecial: boolean): (state: GrammarState) => TokenConstraint {
    const tokenizer = this.opts.tokenizer!;
    return (state) => new GrammarConstraint(tokenizer, tokenPieces(tokenizer, vocabSize, !skipSpecial), new Set(stopIds), skipSpecial, state);
  }

  /** The live sequence a new prompt copies its beginning from (shared-prefix.ts), unless sharing is off. */
  private prefixLeader(ids: Int32Array, promptTop: number | null, cacheSalt: string | null): { leader: Sequence; positions: number } | null {
    if (this.opts.sharePrefixes === false) return null;
    return longestSharedBeginning([...this.active, ...this.waiting], ids, promptTop, cacheSalt);
  }

  /**
   * Whether `seq` can run this step, having taken its leader's cached positions once the leader
   * holds them. A leader that ended or was aborted first leaves `seq` to compute its prompt as
   * any other.
   */
  private takePrefix(seq: Sequence): boolean {
    const leader = seq.leader!;
    const need = seq.sharedPositions;
    if (leader.aborted || leader.slot < 0) {
      seq.leader = null;
      return true;
    }
    if (this.cache.lengths[leader.slot] < need) return false;
    // a leader whose windowed layers have moved on past the positions this one needs: computed anew
    if (!this.cache.canCopyPrefix(leader.slot, need)) {
      seq.leader = null;
      return true;
    }
    this.cache.copyPrefix(leader.slot, seq.slot, need);
    seq.fed = need;
    // the leader has scored those positions too (rows 0 … need − 1 predict tokens 1 … need, the same tokens)
    if (seq.promptLogprobs !== null) seq.promptLogprobs = leader.promptLogprobs!.slice(0, need + 1);
    seq.leader = null;
    this.stats.sharedPrefixTokens += need;
    return true;
  }

  /** Aborts every request, waits for the loop to stop; later submits throw DecoderClosedError. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.waiting, ...this.active]) s.aborted = true;
    this.kick();
    await this.running;
  }

  private kick(): void {
    if (this.running) return;
    this.running = this.loop().finally(() => {
      this.running = null;
      if (this.waiting.length > 0 || this.active.length > 0) this.kick();
    });
  }

  private async loop(): Promise<void> {
    while (this.waiting.length > 0 || this.active.length > 0) {
      this.reap();
      this.freeLingering();
      this.admit();
      if (this.active.length === 0) continue;
      try {
        await this.step();
      } catch (err) {
        // a failed forward pass fails the requests in it; the decoder keeps serving the others
        for (const s of this.active.splice(0)) this.finishWithError(s, err);
      }
      // let submitters, consumers and abort signals run between steps
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.freeLingering(true);
  }

  /** Ends aborted requests (active or waiting) with finishReason 'abort'. */
  private reap(): void {
    for (const list of [this.waiting, this.active]) {
      for (let i = list.length - 1; i >= 0; i--) {
        if (list[i].aborted) this.finish(list.splice(i, 1)[0], 'abort');
      }
    }
  }

  private admit(): void {
    while (this.waiting.length > 0 && this.active.length < this.maxBatchSize) {
      let slot = this.cache.acquire();
      if (slot === null && this.lingering.length > 0) {
        // a waiting request needs the slot more than a copy saves: its followers compute their prompts
        this.freeSlot(this.lingering.shift()!);
        slot = this.cache.acquire();
      }
      if (slot === null) break;
      const seq = this.waiting.shift()!;
      seq.slot = slot;
      this.active.push(seq);
    }
  }

  /** One forward pass over every active request, then one token for each that finished its prompt. */
  private async step(): Promise<void> {
    const inputs: Int32Array[] = [];
    const slots: number[] = [];
    const sampling: Sequence[] = [];
    let prefillBudget = this.maxPrefillTokens;
    const members: Sequence[] = [];
    /** members whose prompt is scored (promptLogprobs), with their index and chunk's first position */
    const scoring: Array<{ seq: Sequence; member: number; start: number }> = [];
    for (const seq of this.active) {
      if (seq.leader !== null && !this.takePrefix(seq)) continue;
      if (seq.fed < seq.prompt.length) {
        // a prefilling request gets a chunk of its prompt (at least one token so it always progresses)
        if (prefillBudget <= 0 && members.length > 0) continue;
        const take = Math.min(seq.prompt.length - seq.fed, Math.max(1, prefillBudget));
        prefillBudget -= take;
        this.stats.prefillTokens += take;
        if (seq.promptLogprobs !== null) scoring.push({ seq, member: members.length, start: seq.fed });
        inputs.push(seq.prompt.subarray(seq.fed, seq.fed + take));
        seq.fed += take;
        if (seq.fed === seq.prompt.length) sampling.push(seq);
      } else {
        inputs.push(Int32Array.of(seq.generated[seq.generated.length - 1]));
        sampling.push(seq);
      }
      slots.push(seq.slot);
      members.push(seq);
    }
    if (inputs.length === 0) return; // every active sequence waits for a leader's prompt (not reached: a leader is active)
    const batch = batchFromSequences(inputs);
    const hidden = await runDecoder(this.provider, this.engine, batch, { kvCache: this.cache, kvSlots: slots });
    this.stats.steps++;
    for (const { seq, member, start } of scoring) await this.scorePrompt(seq, start, hidden, batch.offsets[member], batch.offsets[member + 1]);
    if (sampling.length === 0) return;
    // final hidden state of the last row of each sampling request
    const h = this.provider.config.hiddenSize;
    const last = this.stepBuffers.last(sampling.length * h);
    sampling.forEach((seq, i) => {
      const s = members.indexOf(seq);
      const row = batch.offsets[s + 1] - 1;
      last.set(hidden.subarray(row * h, (row + 1) * h), i * h);
    });
    const vocab = this.provider.config.vocabSize;
    const logits = this.stepBuffers.logits(sampling.length * vocab);
    await logitsInto(this.provider, this.engine, last, sampling.length, logits, this.stepBuffers.head);
    sampling.forEach((seq, i) => {
      if (seq.generated.length === 0) this.stats.promptTokens += seq.prompt.length;
      const row = logits.subarray(i * vocab, (i + 1) * vocab);
      // log-probabilities are the model's own (raw logits, vLLM's default), whatever the processing
      const raw = (seq.logitsProcessor !== null || seq.constraint !== null) && seq.logprobs !== null ? this.stepBuffers.raw(row) : row;
      seq.logitsProcessor?.apply(row);
      const token = seq.constraint === null ? seq.sampler.next(row, this.pickGreedy) : seq.constraint.choose(row, seq.sampler, this.pickGreedy);
      if (token < 0) {
        // only reachable when other processing (allowed tokens, bias) leaves no token that fits the JSON
        this.active.splice(this.active.indexOf(seq), 1);
        this.finishWithError(seq, new GenerationParamsError('no token can continue the constrained output (JSON, regex or choice): the other sampling restrictions of the request (allowed tokens, logit bias) leave none that fits', 'responseFormat'));
        return;
      }
      seq.constraint?.commit(token);
      const logprob = seq.logprobs === null ? undefined : tokenLogprobs(raw, token, seq.logprobs, this.logSumExp(raw));
      seq.logitsProcessor?.observe(token);
      seq.generated.push(token);
      this.stats.generatedTokens++;
      const isStopToken = seq.stopIds.has(token);
      const checkStops = seq.generated.length > seq.minNew;
      // a stop token's own text (empty unless special tokens are kept) only when the stop is to be included, as vLLM does
      const pushed = isStopToken ? (seq.includeStop ? { text: seq.text.push(token, false).text, stop: false } : { text: '', stop: false }) : seq.text.push(token, checkStops);
      const reason: FinishReason | null = isStopToken || pushed.stop || seq.constraint?.complete ? 'stop' : seq.generated.length >= seq.maxNew ? 'length' : null;
      // text held back for a possible stop string is released with the last token
      const text = reason !== null && !pushed.stop ? pushed.text + seq.text.flush() : pushed.text;
      const event: Extract<GenerationEvent, { type: 'token' }> = { type: 'token', token, text };
      if (logprob) event.logprob = logprob;
      if (seq.generated.length === 1 && seq.promptLogprobs !== null) event.promptLogprobs = seq.promptLogprobs;
      seq.stream.push(event);
      if (reason !== null) this.complete(seq, reason);
    });
  }

  /**
   * Log-probabilities of the prompt tokens that rows [rowStart, rowEnd) of this step's hidden
   * states predict (the chunk that starts at prompt position `start`; the row at position p
   * predicts token p + 1, the last prompt row the first generated token, which sampling reports).
   * The head runs over blocks of rows, so a long prompt never holds rows × vocab logits.
   */
  private async scorePrompt(seq: Sequence, start: number, hidden: Float32Array, rowStart: number, rowEnd: number): Promise<void> {
    const { hiddenSize: h, vocabSize: vocab } = this.provider.config;
    const rows = Math.min(rowEnd - rowStart, seq.prompt.length - 1 - start);
    // rows per pass of the head: enough to amortise reading it (a large vocabulary's head is
    // hundreds of MB), few enough that their logits stay under PROMPT_LOGITS_BYTES
    const block = Math.max(1, Math.min(256, Math.floor((this.opts.promptLogitsBytes ?? PROMPT_LOGITS_BYTES) / (4 * vocab))));
    const logits = new Float32Array(Math.min(block, Math.max(rows, 1)) * vocab);
    for (let r0 = 0; r0 < rows; r0 += block) {
      const m = Math.min(block, rows - r0);
      const x = hidden.slice((rowStart + r0) * h, (rowStart + r0 + m) * h);
      await logitsInto(this.provider, this.engine, x, m, logits, this.stepBuffers.head);
      for (let i = 0; i < m; i++) {
        const row = logits.subarray(i * vocab, (i + 1) * vocab);
        const next = seq.prompt[start + r0 + i + 1];
        seq.promptLogprobs!.push(tokenLogprobs(row, next, seq.promptTop, this.logSumExp(row)));
      }
    }
  }

  /** log Σ exp(row) through the engine's logitStats kernel */
  private logSumExp(row: Float32Array): number {
    const out = this.rowStats;
    this.engine.kernels.logitStats(1, row.length, row, out);
    return out.max[0] + Math.log(out.sumExp[0]);
  }

  private complete(seq: Sequence, reason: FinishReason): void {
    const i = this.active.indexOf(seq);
    if (i >= 0) this.active.splice(i, 1);
    this.finish(seq, reason);
  }

  /**
   * Frees a finished sequence's KV slot, unless sequences still wait to copy positions from it:
   * then it lingers until they have (freeLingering). A request scored with max_tokens 0 ends in
   * the step that caches its prompt, before the other prompts of its batch could copy from it.
   * An aborted or failed sequence never lingers (its cache may be incomplete).
   */
  private release(seq: Sequence, linger = true): void {
    seq.detach?.();
    if (seq.slot < 0) return;
    if (linger && !seq.aborted && this.hasFollowers(seq)) {
      this.lingering.push(seq);
      return;
    }
    this.freeSlot(seq);
  }

  private freeSlot(seq: Sequence): void {
    this.cache.release(seq.slot);
    seq.slot = -1;
  }

  private hasFollowers(seq: Sequence): boolean {
    return this.active.some((f) => f.leader === seq && !f.aborted) || this.waiting.some((f) => f.leader === seq && !f.aborted);
  }

  /** Frees the slots of lingering sequences nobody waits for any more (all of them with `all`). */
  private freeLingering(all = false): void {
    for (let i = this.lingering.length - 1; i >= 0; i--) {
      const seq = this.lingering[i];
      if (!all && this.hasFollowers(seq)) continue;
      this.lingering.splice(i, 1);
      this.freeSlot(seq);
    }
  }

  private finish(seq: Sequence, reason: FinishReason): void {
    this.release(seq);
    seq.stream.push({
      type: 'end',
      usage: { promptTokens: seq.prompt.length, completionTokens: seq.generated.length, finishReason: reason, seed: seq.sampler.params.seed },
      text: seq.text.completion,
    });
  }

  private finishWithError(seq: Sequence, err: unknown): void {
    this.release(seq, false);
    seq.stream.fail(err);
  }
}
