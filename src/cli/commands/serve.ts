/**
 * `rfid-moe serve <model-or-dir>… [--port 8000] [--host 127.0.0.1] [--api-key KEY] [--allowed-origins LIST] [--memory-budget BYTES] [--max-model-len N]
 *   [--policy tyche|keep-alive|on-demand|lru] [--keep-alive S] [--tyche-window W]
 *   [--tyche-p-load P] [--tyche-p-off P] [--no-tyche-prior-fill] [--no-tyche-load-lead]
 *   [--no-tyche-reload-guard] [--no-tyche-merge-bursts] [--tyche-swap-margin X]
 *   [--tyche-max-idle S] [--tyche-warm-start] [--tyche-rank-filled-window] [--no-bf16-weights] [--no-mmap]
 *   [--no-materialise-experts] [--matmul-activations f32|bf16]`
 *
 * One process serves every given model (a directory, or name=dir) through an OpenAI-compatible
 * HTTP API; the residency policy decides which are in memory within the budget. A model whose
 * checkpoint is broken is refused with its reason on stderr and the others are served. SIGTERM
 * or SIGINT drains: in-flight requests finish, then the process exits 0.
 */
import { existsSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { readChatTemplate } from '../chat-template-option.js';
import { createEngine, parseEngineChoice } from '../../engine/index.js';
import { DEFAULT_KEEP_ALIVE_MS, POLICY_NAMES, type PolicyName, type TycheOptions } from '../../serve/policies.js';
import { P_LOAD, P_OFF, TYCHE_WINDOW } from '../../serve/tyche.js';
import { fmtBytes } from '../../util/bytes.js';
import { createServer, type PerModel } from '../../serve/server.js';
import { parseModelSpec } from '../../serve/models.js';
import { OptionError, parseInteger, parseMatmulActivations, parseNumber, parseReasoningParser } from '../options.js';
import { TOOL_CALL_FORMATS, type ToolCallFormat } from '../../serve/tools/formats/index.js';
import { parseAllowedOrigins } from '../../serve/cors.js';
import { REASONING_PARSERS, type ReasoningParser } from '../../serve/reasoning.js';
import { fail } from '../errors.js';
import { addOptions, defaultText, engineOptions, matmulActivationsOption, type MatmulCliOptions } from '../common-options.js';

interface ServeCliOptions extends MatmulCliOptions {
  port: string;
  host: string;
  apiKey?: string;
  allowedOrigins?: string;
  memoryBudget?: string;
  maxModelLen?: string;
  policy: string;
  keepAlive: string;
  tycheWindow: string;
  tychePLoad: string;
  tychePOff: string;
  tychePriorFill: boolean;
  tycheLoadLead: boolean;
  tycheReloadGuard: boolean;
  tycheMergeBursts: boolean;
  tycheSwapMargin?: string;
  tycheMaxIdle?: string;
  tycheWarmStart?: boolean;
  tycheRankFilledWindow?: boolean;
  maxBatchSize: string;
  bf16Weights: boolean;
  mmap: boolean;
  materialiseExperts: boolean;
  drainTimeout: string;
  toolCallParser?: string[];
  excludeToolsWhenToolChoiceNone?: boolean;
  reasoningParser?: string[];
  chatTemplate?: string[];
  engine: string;
  threads?: string;
  quiet?: boolean;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** "12000000000", "12G", "12GB" (powers of 1000), "11.2GiB" (powers of 1024). */
export function parseBytes(flag: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new OptionError(`${flag} must be a byte count such as 8000000000, 8G or 7.5GiB; got "${value}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!(bytes > 0)) throw new OptionError(`${flag} must be positive, got "${value}"`);
  return bytes;
}

/** A probability strictly between 0 and 1. */
function parseProbability(flag: string, value: string): number {
  const p = parseNumber(flag, value);
  if (!(p > 0 && p < 1)) throw new OptionError(`${flag} must be a probability strictly between 0 and 1, got "${value}"`);
  return p;
}

/** The Tyche flags, as their option keys and names (to refuse them with another policy). */
const TYCHE_FLAGS: Array<[keyof ServeCliOptions, string]> = [
  ['tycheWindow', '--tyche-window'],
  ['tychePLoad', '--tyche-p-load'],
  ['tychePOff', '--tyche-p-off'],
  ['tychePriorFill', '--no-tyche-prior-fill'],
  ['tycheLoadLead', '--no-tyche-load-lead'],
  ['tycheReloadGuard', '--no-tyche-reload-guard'],
  ['tycheMergeBursts', '--no-tyche-merge-bursts'],
  ['tycheSwapMargin', '--tyche-swap-margin'],
  ['tycheMaxIdle', '--tyche-max-idle'],
  ['tycheWarmStart', '--tyche-warm-start'],
  ['tycheRankFilledWindow', '--tyche-rank-filled-window'],
];

/** Tyche's parameters from the flags; a flag given with another policy is refused (it would do nothing). */
export function tycheOptionsFrom(opts: ServeCliOptions, policy: PolicyName, givenOnCommandLine: (key: string) => boolean): TycheOptions {
  if (policy !== 'tyche') {
    const given = TYCHE_FLAGS.filter(([key]) => givenOnCommandLine(key)).map(([, flag]) => flag);
    if (given.length > 0) throw new OptionError(`${given.join(', ')} appl${given.length > 1 ? 'y' : 'ies'} to --policy tyche only (the policy is ${policy})`);
  }
  const pLoad = parseProbability('--tyche-p-load', opts.tychePLoad);
  const pOff = parseProbability('--tyche-p-off', opts.tychePOff);
  if (!(pLoad < pOff)) throw new OptionError(`--tyche-p-load (${pLoad}) must be below --tyche-p-off (${pOff}): a model would be offloaded before it is pre-loaded`);
  return {
    window: parseInteger('--tyche-window', opts.tycheWindow, 1),
    pLoad,
    pOff,
    priorFill: opts.tychePriorFill,
    loadLead: opts.tycheLoadLead,
    reloadGuard: opts.tycheReloadGuard,
    mergeBursts: opts.tycheMergeBursts,
    swapMargin: opts.tycheSwapMargin === undefined ? undefined : parseSwapMargin(opts.tycheSwapMargin),
    maxIdleMs: opts.tycheMaxIdle === undefined ? undefined : parseInteger('--tyche-max-idle', opts.tycheMaxIdle, 1) * 1000,
    warmStart: opts.tycheWarmStart ?? false,
    rankWithFilledWindow: opts.tycheRankFilledWindow ?? false,
  };
}

function parseSwapMargin(value: string): number {
  const x = parseNumber('--tyche-swap-margin', value);
  if (!(x >= 1)) throw new OptionError(`--tyche-swap-margin must be a number ≥ 1 (the factor by which a pre-loaded model must outrank the one it evicts), got "${value}"`);
  return x;
}

function parsePolicy(value: string): PolicyName {
  if ((POLICY_NAMES as readonly string[]).includes(value)) return value as PolicyName;
  throw new OptionError(`--policy must be one of ${POLICY_NAMES.join(', ')}; got "${value}"`);
}

export function register(program: Command): void {
  addOptions(
    program
      .command('serve')
      .description('serve models through an OpenAI-compatible HTTP API, with Tyche-style pre-loading')
      .argument('<models...>', 'model directories (original or compressed), or name=dir to choose the id clients use')
      .option('--port <n>', 'TCP port (0 = any free port)', '8000')
      .option('--host <addr>', 'address to listen on', '127.0.0.1')
      .addOption(defaultText(new Option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1, tokenizer and TGI requests (RFID_MOE_API_KEY sets it without showing it in the process list)').env('RFID_MOE_API_KEY'), 'none: anyone who reaches the port may use it'))
      .addOption(
        defaultText(
          new Option('--allowed-origins <origins>', 'web pages (origins) whose JavaScript may call the server (CORS): a comma-separated or JSON list, e.g. https://app.example.com; * allows every page'),
          'pages on this machine (http(s)://localhost, 127.0.0.1, [::1], any port)',
        ),
      )
      .addOption(defaultText(new Option('--memory-budget <bytes>', 'bytes all resident models may hold together, e.g. 8G'), 'half the machine memory'))
      .option('--policy <name>', `residency policy: ${POLICY_NAMES.join(' | ')}`, 'tyche')
      .option('--keep-alive <seconds>', 'keep-alive TTL, and Tyche’s TTL while a model’s arrival rate is unknown', String(DEFAULT_KEEP_ALIVE_MS / 1000))
      .option('--tyche-window <n>', 'tyche: inter-arrival times in the sliding window the arrival rate λ is taken from (W)', String(TYCHE_WINDOW))
      .option('--tyche-p-load <p>', 'tyche: pre-load an idle model when P(a request within its idle time) reaches this', String(P_LOAD))
      .option('--tyche-p-off <p>', 'tyche: offload an idle model when that probability reaches this (above --tyche-p-load)', String(P_OFF))
      .option('--no-tyche-prior-fill', 'tyche: before W intervals are seen, take λ from the intervals alone instead of filling the window with the keep-alive prior')
      .option('--no-tyche-load-lead', 'tyche: start a pre-load at t_load, not the model’s last load time before it')
      .option('--no-tyche-reload-guard', 'tyche: offload at t_off even when reloading would take longer than t_load')
      .option('--no-tyche-merge-bursts', 'tyche: count every arrival in the rate window, also those that find the model busy')
      .addOption(defaultText(new Option('--tyche-swap-margin <x>', 'tyche: a pre-load may evict an idle model whose keep score is at most 1/x of its own (≥ 1)'), 'never: pre-loads use free room only'))
      .addOption(defaultText(new Option('--tyche-max-idle <seconds>', 'tyche: offload an idle model after this long even when its t_off is later'), 'no cap: t_off alone'))
      .option('--tyche-warm-start', 'tyche: a model not yet requested is idle since startup at the prior rate: pre-loaded into free room at its t_load, offloaded at the keep-alive TTL')
      .option('--tyche-rank-filled-window', 'tyche: rank models for eviction by the prior-filled window, as the thresholds do, instead of lending the prior one interval (the ranking before the loopback replay)')
      .addOption(defaultText(new Option('--max-model-len <n>', 'the most positions (prompt and completion) a request may use: caps each model\'s context, and with it the KV cache a request without max_tokens reserves'), 'each model\'s max_position_embeddings'))
      .option('--max-batch-size <n>', 'requests decoded together per model (continuous batching)', '32')
      .option('--no-bf16-weights', 'widen weights stored as BF16 to f32 in memory (twice their bytes; by default they stay BF16 as stored)')
      .option('--no-mmap', 'read weights into the process\'s own memory instead of mapping the checkpoint files (mapped, a load from the page cache is page-table work and the model is not held twice; a file rewritten in place while it is mapped can crash the process)')
      .option('--no-materialise-experts', 'keep a factored model\'s experts factored: no dense copies of the hottest, so its results do not change while it serves')
      .option('--drain-timeout <seconds>', 'on SIGTERM, how long in-flight requests may run before they are aborted', '30')
      .option(
        '--tool-call-parser <[model=]name>',
        `how the models write tool calls, for tool_choice "auto": ${[...TOOL_CALL_FORMATS.keys()].join(' | ')} | none; model= names one model's (repeatable) (default: each model's from its chat template)`,
        collect,
      )
      .option('--exclude-tools-when-tool-choice-none', 'under tool_choice "none", leave the tools out of the chat template as well (vLLM\'s flag; by default the template still gets them): a model shown its tools may write a call anyway, which is then read as text', false)
      .option('--chat-template <[model=]file>', 'a Jinja chat template (a file, or the template itself) to use instead of the models’ own; model= gives one model its own (repeatable)', collect)
      .option(
        '--reasoning-parser <[model=]name>',
        `give chat answers' reasoning (<think>…</think>; openai_gptoss: gpt-oss's analysis channel, and its calls) apart as reasoning_content, and hold a response format to what follows it: ${[...REASONING_PARSERS.keys()].join(' | ')} | none; model= names one model's (repeatable) (default: openai_gptoss for gpt-oss models, none for the others, whose reasoning stays in the content)`,
        collect,
      ),
    engineOptions(),
    matmulActivationsOption(),
  )
    .option('--quiet', 'no load/unload messages on stderr', false)
    .action(async (models: string[], opts: ServeCliOptions, command: Command) => serve(models, opts, (key) => command.getOptionValueSource(key) === 'cli'));
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * A repeatable option that sets something for the models: VALUE for every model, MODEL=VALUE for
 * one (`modelOf` tells which values name a model); the one for every model fills in the models
 * not named. Answers one value for all, values by model id, or undefined (the option not given:
 * each model's own).
 */
function parsePerModel<T>(
  flag: string,
  values: readonly string[] | undefined,
  modelIds: readonly string[],
  parseOne: (value: string) => T,
  modelOf: (value: string) => { id: string; value: string } | null,
  form: string,
): T | Record<string, T> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  let all: { value: T } | undefined;
  const byModel: Record<string, T> = {};
  for (const value of values) {
    const named = modelOf(value);
    const parsed = parseOne(named === null ? value : named.value);
    if (named === null) {
      if (all !== undefined) throw new OptionError(`${flag} is given twice for every model; give one, or name the model each is for (model=${form})`);
      all = { value: parsed };
    } else {
      if (Object.hasOwn(byModel, named.id)) throw new OptionError(`${flag} is given twice for ${named.id}`);
      byModel[named.id] = parsed;
    }
  }
  if (Object.keys(byModel).length === 0) return all?.value;
  if (all !== undefined) for (const id of modelIds) if (!Object.hasOwn(byModel, id)) byModel[id] = all.value;
  return byModel;
}

/**
 * --chat-template values: `file` for every model, `model=file` for one (where `model` is a served
 * model's id and no file has the whole value's name), each a file or, where no such file exists
 * and the value holds Jinja's `{{` or `{%`, the template itself (as vLLM reads its
 * --chat-template). Answers one template for all, templates by model id, or undefined (the
 * models' own).
 */
export function parseChatTemplates(values: readonly string[] | undefined, modelIds: readonly string[]): string | Record<string, string> | undefined {
  return parsePerModel('--chat-template', values, modelIds, readChatTemplate, (value) => {
    const named = /^([^=/\\]+)=([\s\S]*)$/.exec(value);
    return named !== null && modelIds.includes(named[1]) && !existsSync(value) ? { id: named[1], value: named[2] } : null;
  }, 'file');
}

/** MODEL=NAME for --reasoning-parser and --tool-call-parser: MODEL must be served. */
function servedModelOf(flag: string, modelIds: readonly string[]): (value: string) => { id: string; value: string } | null {
  return (value) => {
    const named = /^([^=]+)=(.*)$/.exec(value);
    if (named === null) return null;
    if (!modelIds.includes(named[1])) throw new OptionError(`${flag} ${value}: no model is served as "${named[1]}" (the models: ${modelIds.join(', ')})`);
    return { id: named[1], value: named[2] };
  };
}

/** --reasoning-parser, repeatable ([model=]name; none turns a default off). */
export function parseReasoningParsers(values: readonly string[] | undefined, modelIds: readonly string[]): PerModel<ReasoningParser> | undefined {
  return parsePerModel('--reasoning-parser', values, modelIds, parseReasoningParser, servedModelOf('--reasoning-parser', modelIds), 'name');
}

/** --tool-call-parser, repeatable ([model=]name; none: no calls read under "auto"). */
export function parseToolCallParsers(values: readonly string[] | undefined, modelIds: readonly string[]): PerModel<ToolCallFormat> | undefined {
  return parsePerModel('--tool-call-parser', values, modelIds, parseToolCallParser, servedModelOf('--tool-call-parser', modelIds), 'name');
}

/** --tool-call-parser's name: a known format, or "none". */
function parseToolCallParser(name: string): ToolCallFormat | null {
  if (name === 'none') return null;
  const format = TOOL_CALL_FORMATS.get(name);
  if (!format) throw new OptionError(`--tool-call-parser must be one of ${[...TOOL_CALL_FORMATS.keys()].join(', ')} or none, got "${name}"`);
  return format;
}

/** Addresses only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

async function serve(models: string[], opts: ServeCliOptions, givenOnCommandLine: (key: string) => boolean): Promise<void> {
  if (opts.apiKey !== undefined && opts.apiKey.trim() === '') throw new OptionError('--api-key must not be empty (an empty key would admit anyone); leave it out to serve without one');
  const port = parseInteger('--port', opts.port, 0);
  if (port > 65535) throw new OptionError(`--port must be at most 65535, got ${port}`);
  const policy = parsePolicy(opts.policy);
  const memoryBudget = opts.memoryBudget === undefined ? undefined : parseBytes('--memory-budget', opts.memoryBudget);
  const keepAliveMs = parseInteger('--keep-alive', opts.keepAlive, 1) * 1000;
  const tyche = tycheOptionsFrom(opts, policy, givenOnCommandLine);
  const maxBatchSize = parseInteger('--max-batch-size', opts.maxBatchSize, 1);
  const maxModelLen = opts.maxModelLen === undefined ? undefined : parseInteger('--max-model-len', opts.maxModelLen, 2);
  const drainTimeoutMs = parseInteger('--drain-timeout', opts.drainTimeout, 0) * 1000;
  const threads = opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1);
  let allowedOrigins: string[] | undefined;
  if (opts.allowedOrigins !== undefined) {
    try {
      allowedOrigins = parseAllowedOrigins(opts.allowedOrigins);
    } catch (err) {
      throw new OptionError(`--allowed-origins: ${(err as Error).message}`);
    }
  }

  const modelIds = models.map((m) => parseModelSpec(m).id);
  const reasoningParser = parseReasoningParsers(opts.reasoningParser, modelIds);
  const toolCallFormat = parseToolCallParsers(opts.toolCallParser, modelIds);
  const chatTemplate = parseChatTemplates(opts.chatTemplate, modelIds);
  const matmulActivations = parseMatmulActivations(opts.matmulActivations, opts.bf16Weights);
  const { engine, notice } = await createEngine(parseEngineChoice(opts.engine), { threads, matmulActivations });
  const log = (line: string) => {
    if (!opts.quiet) process.stderr.write(`${line}\n`);
  };
  log(notice);
  const server = await createServer({
    models,
    engine,
    policy,
    memoryBudget,
    keepAliveMs,
    tyche,
    maxBatchSize,
    maxModelLen,
    bf16Weights: opts.bf16Weights,
    mapWeights: opts.mmap,
    materialiseExperts: opts.materialiseExperts,
    drainTimeoutMs,
    toolCallFormat,
    reasoningParser,
    chatTemplate,
    excludeToolsWhenToolChoiceNone: opts.excludeToolsWhenToolChoiceNone,
    apiKey: opts.apiKey,
    allowedOrigins,
    idleGc: true,
    onRefused: (m) => process.stderr.write(`rfid-moe: refusing model ${m.id} (${m.dir}): ${m.reason}\n`),
    onWarning: (message) => process.stderr.write(`rfid-moe: ${message}\n`),
    onLoad: (e) => log(`loaded ${e.id} (${fmtBytes(e.bytes)}, ${(e.ms / 1000).toFixed(2)} s, ${e.reason})`),
    onUnload: (e) => log(`unloaded ${e.id} (${fmtBytes(e.bytes)}, ${e.reason === 'policy' ? 'offloaded by the policy' : e.reason})`),
  });
  if (server.models.size === 0) {
    await server.close();
    throw new Error('none of the given models can be served (see the reasons above)');
  }
  const url = await server.listen({ port, host: opts.host });
  if (opts.apiKey === undefined && !isLoopback(opts.host)) {
    process.stderr.write(`rfid-moe: listening on ${opts.host} without an API key: anyone who can reach the port can generate; set --api-key or RFID_MOE_API_KEY\n`);
  }
  // always printed, --quiet or not: scripts read the URL from it (with --port 0 too)
  process.stderr.write(`serving ${[...server.models.keys()].join(', ')} at ${url} (policy ${server.residency.policy.describe()}, memory budget ${fmtBytes(server.residency.budgetBytes)})\n`);
  for (const m of server.models.values()) {
    const d = m.samplingDefaults;
    const set = [d.temperature === undefined ? '' : `temperature ${d.temperature}`, d.topP === undefined ? '' : `top_p ${d.topP}`, d.topK === undefined ? '' : `top_k ${d.topK}`, d.minP === undefined ? '' : `min_p ${d.minP}`, d.repetitionPenalty === undefined ? '' : `repetition_penalty ${d.repetitionPenalty}`].filter(Boolean);
    if (set.length > 0) process.stderr.write(`${m.id}: requests that do not set them sample with its generation_config.json's ${set.join(', ')}\n`);
    if (m.reasoningParser !== null) log(`${m.id}: chat answers' reasoning read apart (${m.reasoningParser.name})`);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: draining in-flight requests`);
    server.close().then(
      () => {
        log('drained; exiting');
        process.exit(0);
      },
      (err) => fail(err, false),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
