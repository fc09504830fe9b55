/**
 * `rfid-moe generate <model> --prompt "…" [--max-new-tokens N] [--temperature T] [--top-k K]
 *   [--top-p P] [--min-p M] [--repetition-penalty R] [--frequency-penalty F] [--presence-penalty P] [--seed S]
 *   [--stop STR]… [--response-format text|json_object] [--json-schema FILE] [--regex P] [--choice T]…
 *   [--chat [--system TEXT] [--chat-template FILE] [--chat-template-kwargs JSON] [--reasoning-effort E]]
 *   [--reasoning-parser NAME] [--no-bf16-weights] [--no-mmap] [--matmul-activations f32|bf16] [--json]`
 *
 * Generates a completion with the model's own tokenizer and streams its text to stdout as tokens
 * are produced (with --json: one object at the end instead). Original, dense-compressed and
 * factored checkpoints all open through `openModel`; factored experts run factored. Notes
 * (engine, load time, speed, why generation stopped) go to stderr. With a reasoning parser the
 * text is read as the server's chat endpoint reads it: the answer to stdout, the reasoning to
 * stderr as it comes (it is output, so --quiet keeps it).
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { parameterCounts } from '../../checkpoint/counts.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { openModel } from '../../compressed/open-model.js';
import { createEngine, parseEngineChoice } from '../../engine/index.js';
import { assertRunnable } from '../../runtime/checkpoint-weights.js';
import { generate } from '../../runtime/generation/generate.js';
import type { GenerationParams } from '../../runtime/generation/decoder.js';
import { loadTextCodec } from '../../runtime/generation/codec.js';
import { startingState } from '../../runtime/generation/grammar-constraint.js';
import { choicePattern, compileRegex, RegexError } from '../../runtime/generation/regex-prefix.js';
import { SchemaError } from '../../runtime/generation/json-schema.js';
import { weightProviderOf } from '../../runtime/model-source.js';
import { DEFAULT_RESIDENT_BYTES, residentWeightBytes } from '../../runtime/resident-weights.js';
import { OptionError, parseInteger, parseMatmulActivations, parseReasoningParser } from '../options.js';
import { readChatTemplate } from '../chat-template-option.js';
import { chatSetupOf } from '../../serve/models.js';
import { renderChat, templateKwargsOf } from '../../serve/chat-template.js';
import { defaultReasoningParser, gateFormatOf, REASONING_PARSERS, reasoningStart } from '../../serve/reasoning.js';
import { reasoningReaderOf } from '../../serve/reasoning-reader.js';
import type { ChoiceDelta } from '../../serve/tools/call-readers.js';
import { encodeInPlace } from '../../serve/encode-off-thread.js';
import { loadTokenizer } from '../../tokens/tokenizer.js';
import { addOptions, defaultText, type EngineCliOptions, engineOptions, matmulActivationsOption, type MatmulCliOptions, type OutputCliOptions } from '../common-options.js';

interface GenerateCliOptions extends EngineCliOptions, OutputCliOptions, MatmulCliOptions {
  prompt: string;
  maxNewTokens: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  minP?: string;
  repetitionPenalty?: string;
  frequencyPenalty?: string;
  presencePenalty?: string;
  seed?: string;
  stop: string[];
  ignoreEos?: boolean;
  responseFormat: 'text' | 'json_object';
  jsonSchema?: string;
  regex?: string;
  choice: string[];
  bf16Weights: boolean;
  mmap: boolean;
  contextLength?: string;
  tokenizer?: string;
  chat: boolean;
  system?: string;
  chatTemplate?: string;
  chatTemplateKwargs?: string;
  reasoningEffort?: string;
  reasoningParser?: string;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('generate')
      .description('generate text from a prompt (streams to stdout)')
      .argument('<model>', 'checkpoint directory (original, or an rfid-moe compressed output)')
      .requiredOption('--prompt <text>', 'the prompt (with --chat: the user message)')
      .option('--chat', "send the prompt as a user message through the model's chat template (as /v1/chat/completions does), the completion being the assistant's answer", false)
      .option('--system <text>', 'with --chat: a system message before it')
      .option('--chat-template <file>', "with --chat: this Jinja chat template (a file, or the template itself) instead of the model's own")
      .option('--chat-template-kwargs <json>', 'with --chat: variables for the chat template, a JSON object (e.g. {"enable_thinking": false} for Qwen3), as the server\'s chat_template_kwargs')
      .option('--reasoning-effort <effort>', "with --chat: low | medium | high, the chat template's reasoning_effort (gpt-oss's writes it into its system message), as the server's reasoning_effort")
      .option(
        '--reasoning-parser <name>',
        `give the reasoning apart from the answer: the answer to stdout, the reasoning to stderr (with --json: reasoning and content), and hold a response format to the answer: ${[...REASONING_PARSERS.keys()].join(' | ')} | none (default: with --chat, openai_gptoss for gpt-oss models; none otherwise)`,
      )
      .option('--max-new-tokens <n>', 'most tokens to generate', '128')
      .addOption(defaultText(new Option('--temperature <t>', 'sampling temperature; 0 = greedy'), "the model's generation_config.json, else 1"))
      .addOption(defaultText(new Option('--top-k <k>', 'sample only from the k most likely tokens (0 = off)'), "the model's generation_config.json, else 0"))
      .addOption(defaultText(new Option('--top-p <p>', 'sample only from the smallest set of tokens with this much probability (1 = off)'), "the model's generation_config.json, else 1"))
      .addOption(defaultText(new Option('--min-p <m>', 'sample only tokens at least m times as likely as the most likely one (0 = off)'), "the model's generation_config.json, else 0"))
      .addOption(defaultText(new Option('--repetition-penalty <r>', 'divide the logits of tokens already in the prompt or completion by r (multiply negative ones); > 1 discourages repeats, 1 = off'), "the model's generation_config.json, else 1"))
      .option('--frequency-penalty <f>', 'subtract f × (times generated so far) from each completion token\'s logit, in [-2, 2]', '0')
      .option('--presence-penalty <p>', 'subtract p from the logit of each token already generated, in [-2, 2]', '0')
      .addOption(defaultText(new Option('--seed <s>', 'seed of the sampler'), 'random, printed on stderr'))
      .option('--stop <text>', 'stop when the completion contains this text (repeatable; the text is not printed)', (v: string, acc: string[]) => [...acc, v], [] as string[])
      .addOption(new Option('--response-format <format>', 'json_object: the completion is one JSON object, and ends when it closes (JSON mode)').choices(['text', 'json_object']).default('text'))
      .option('--json-schema <file>', 'hold the completion to the JSON schema in this file (an object valid under it; JSON mode with a schema)')
      .option('--regex <pattern>', 'the completion fully matches this regular expression (JavaScript syntax; lookarounds and backreferences are refused); it ends when nothing can extend the match')
      .option('--choice <text>', 'the completion is exactly one of these texts (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
      .option('--ignore-eos', 'keep generating past the end-of-sequence tokens (eos_token_id of generation_config.json, else of config.json)', false)
      .option('--no-bf16-weights', 'widen weights stored as BF16 to f32 in memory (twice their bytes; by default they stay BF16 as stored)')
      .option('--no-mmap', 'read weights into the process\'s own memory instead of mapping the checkpoint files (mapped, a load from the page cache is page-table work; a file rewritten in place while it is mapped can crash the process)')
      .addOption(defaultText(new Option('--context-length <n>', 'positions for prompt + completion'), "the model's max_position_embeddings"))
      .addOption(defaultText(new Option('--tokenizer <path>', 'tokenizer.json'), "the model directory's")),
    engineOptions(),
    matmulActivationsOption(),
  )
    .addOption(new Option('--json', 'print one JSON object (text, token ids, usage) instead of streaming').default(false))
    .addOption(new Option('--quiet', 'no notes on stderr').default(false))
    .action(async (model: string, opts: GenerateCliOptions) => run(model, opts));
}

/** The schema of --json-schema, read and compiled before the model is opened: a clear error names the file and what is wrong. */
async function readSchema(file: string): Promise<unknown> {
  let schema: unknown;
  try {
    schema = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new OptionError(`--json-schema: cannot read a JSON schema from ${file}: ${(err as Error).message}`);
  }
  try {
    startingState(schema);
  } catch (err) {
    if (err instanceof SchemaError) throw new OptionError(`--json-schema ${file}: ${err.message}`);
    throw err;
  }
  return schema;
}

/** --response-format, --json-schema, --regex or --choice (one of them), checked before the model is opened. */
async function responseFormatOf(opts: GenerateCliOptions): Promise<GenerationParams['responseFormat']> {
  const given = [opts.responseFormat !== 'text' && '--response-format', opts.jsonSchema !== undefined && '--json-schema', opts.regex !== undefined && '--regex', opts.choice.length > 0 && '--choice'].filter((f) => f !== false);
  if (given.length > 1) throw new OptionError(`give one of ${given.join(' and ')}: each holds the completion to a format`);
  if (opts.jsonSchema !== undefined) return { jsonSchema: await readSchema(opts.jsonSchema) };
  const pattern = opts.regex ?? (opts.choice.length > 0 ? choicePattern(opts.choice) : undefined);
  if (pattern === undefined) return opts.responseFormat;
  try {
    compileRegex(pattern);
  } catch (err) {
    if (err instanceof RegexError) throw new OptionError(`${opts.regex !== undefined ? '--regex' : '--choice'}: ${err.message}`);
    throw err;
  }
  return opts.regex !== undefined ? { regex: opts.regex } : { choice: opts.choice };
}

/**
 * --chat: the prompt as a user message (after --system's, if given) rendered by the chat template
 * with its generation prompt, tokenised without the tokenizer's own special tokens (the template
 * holds those it wants), as the server's /v1/chat/completions and transformers' apply_chat_template do.
 */
async function chatPrompt(tokenizerLocation: string, opts: GenerateCliOptions, templateFlag: string | undefined, kwargs: Record<string, unknown>): Promise<{ text: string; ids: Int32Array }> {
  // (--tokenizer may name the tokenizer.json itself: its directory holds the template)
  const tokenizerDir = (await stat(tokenizerLocation)).isDirectory() ? tokenizerLocation : path.dirname(tokenizerLocation);
  const { template, special } = await chatSetupOf(tokenizerDir);
  const chosen = templateFlag ?? template;
  if (chosen === null) {
    throw new OptionError(`--chat: ${tokenizerDir} has no chat template (neither a chat_template.jinja nor a chat_template in its tokenizer_config.json); give one with --chat-template FILE, or leave out --chat to use the prompt as it is`);
  }
  const messages = [...(opts.system !== undefined ? [{ role: 'system' as const, content: opts.system }] : []), { role: 'user' as const, content: opts.prompt }];
  let text: string;
  try {
    text = await renderChat(chosen, path.basename(path.resolve(tokenizerDir)), messages, special, kwargs, { addGenerationPrompt: true });
  } catch (err) {
    throw new OptionError(`--chat: ${(err as Error).message}`);
  }
  return { text, ids: encodeInPlace(await loadTokenizer(tokenizerLocation), text, false) };
}

/** --chat-template-kwargs: a JSON object of template variables. */
function parseTemplateKwargs(value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new OptionError(`--chat-template-kwargs must be a JSON object of template variables: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new OptionError(`--chat-template-kwargs must be a JSON object of template variables, got ${value}`);
  return parsed as Record<string, unknown>;
}

/** --reasoning-effort: the server's values (vLLM's). */
function parseReasoningEffort(value: string | undefined): string | undefined {
  if (value !== undefined && !['low', 'medium', 'high'].includes(value)) throw new OptionError(`--reasoning-effort must be low, medium or high, got "${value}"`);
  return value;
}

function parseNumber(flag: string, value: string, ok: (n: number) => boolean, what: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new OptionError(`${flag} must be ${what}, got "${value}"`);
  return n;
}

async function run(model: string, opts: GenerateCliOptions): Promise<void> {
  const maxNewTokens = parseInteger('--max-new-tokens', opts.maxNewTokens, 1);
  // flags checked before the model is opened; those not given come from the model (below)
  const temperatureFlag = opts.temperature === undefined ? undefined : parseNumber('--temperature', opts.temperature, (n) => n >= 0, 'a number ≥ 0 (0 = greedy)');
  const topKFlag = opts.topK === undefined ? undefined : parseInteger('--top-k', opts.topK, 0);
  const topPFlag = opts.topP === undefined ? undefined : parseNumber('--top-p', opts.topP, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
  const minPFlag = opts.minP === undefined ? undefined : parseNumber('--min-p', opts.minP, (n) => n >= 0 && n <= 1, 'a number in [0, 1]');
  const repetitionFlag = opts.repetitionPenalty === undefined ? undefined : parseNumber('--repetition-penalty', opts.repetitionPenalty, (n) => n > 0, 'a number > 0 (1 = off)');
  const frequencyPenalty = parseNumber('--frequency-penalty', opts.frequencyPenalty ?? '0', (n) => Math.abs(n) <= 2, 'a number in [-2, 2]');
  const presencePenalty = parseNumber('--presence-penalty', opts.presencePenalty ?? '0', (n) => Math.abs(n) <= 2, 'a number in [-2, 2]');
  const seed = opts.seed === undefined ? undefined : parseInteger('--seed', opts.seed, 0);
  const contextLength = opts.contextLength === undefined ? undefined : parseInteger('--context-length', opts.contextLength, 2);
  const threads = opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1);
  const engineChoice = parseEngineChoice(opts.engine);
  const matmulActivations = parseMatmulActivations(opts.matmulActivations, opts.bf16Weights);
  const responseFormat = await responseFormatOf(opts);
  const chatOnly = ([['--system', opts.system], ['--chat-template', opts.chatTemplate], ['--chat-template-kwargs', opts.chatTemplateKwargs], ['--reasoning-effort', opts.reasoningEffort]] as const).find(([, v]) => v !== undefined);
  if (!opts.chat && chatOnly) throw new OptionError(`${chatOnly[0]} applies to --chat only`);
  const reasoningParserFlag = opts.reasoningParser === undefined ? undefined : parseReasoningParser(opts.reasoningParser);
  const templateKwargs = templateKwargsOf({ chat_template_kwargs: parseTemplateKwargs(opts.chatTemplateKwargs), reasoning_effort: parseReasoningEffort(opts.reasoningEffort) });
  const chatTemplateFlag = opts.chatTemplate === undefined ? undefined : readChatTemplate(opts.chatTemplate);
  const note = (line: string) => {
    if (!opts.quiet) process.stderr.write(line + '\n');
  };

  const loadStart = performance.now();
  // the model first: a wrong model path is reported as that, not as a missing tokenizer
  const ckpt: Checkpoint = await openModel(model);
  try {
    const codec = await loadTextCodec(opts.tokenizer ?? model);
    assertRunnable(ckpt);
    const chat = opts.chat ? await chatPrompt(opts.tokenizer ?? model, opts, chatTemplateFlag, templateKwargs) : null;
    // with --chat, a model's default parser where none is named (gpt-oss's harmony: its answers are unreadable without it)
    const reasoningParser = reasoningParserFlag !== undefined ? reasoningParserFlag : chat !== null ? defaultReasoningParser(ckpt.config.family) : null;
    if (reasoningParserFlag === undefined && reasoningParser !== null) note(`reading the answer apart with the ${reasoningParser.name} reasoning parser, ${ckpt.config.family}'s default (--reasoning-parser none turns it off)`);
    // read apart as the server's chat endpoint reads it with the same parser
    const reasoning = reasoningParser ? { parser: reasoningParser, state: reasoningStart(chat?.text ?? opts.prompt, reasoningParser) } : null;
    const reader = reasoning ? reasoningReaderOf(reasoning.parser, reasoning.state) : null;
    const parts = { reasoning: '', content: '' };
    let reasoningOpen = false;
    // the answer to stdout as it comes, the reasoning to stderr (a line after it when the answer starts)
    const show = (deltas: ChoiceDelta[]) => {
      for (const d of deltas) {
        if (d.kind !== 'reasoning' && d.kind !== 'content') continue;
        parts[d.kind] += d.text;
        if (opts.json || d.text === '') continue;
        if (d.kind === 'reasoning') {
          reasoningOpen = true;
          process.stderr.write(d.text);
        } else {
          if (reasoningOpen) process.stderr.write('\n');
          reasoningOpen = false;
          process.stdout.write(d.text);
        }
      }
    };
    const prompt = chat?.ids ?? opts.prompt;
    const defaults = ckpt.config.samplingDefaults;
    const temperature = temperatureFlag ?? defaults.temperature ?? 1;
    const topK = topKFlag ?? defaults.topK ?? 0;
    const topP = topPFlag ?? defaults.topP ?? 1;
    const minP = minPFlag ?? defaults.minP ?? 0;
    const repetitionPenalty = repetitionFlag ?? defaults.repetitionPenalty ?? 1;
    const fromModel = [
      temperatureFlag === undefined && defaults.temperature !== undefined ? `temperature ${temperature}` : '',
      topKFlag === undefined && defaults.topK !== undefined ? `top-k ${topK}` : '',
      topPFlag === undefined && defaults.topP !== undefined ? `top-p ${topP}` : '',
      minPFlag === undefined && defaults.minP !== undefined ? `min-p ${minP}` : '',
      repetitionFlag === undefined && defaults.repetitionPenalty !== undefined ? `repetition-penalty ${repetitionPenalty}` : '',
    ].filter(Boolean);
    if (fromModel.length > 0) note(`sampling with the model's generation_config.json: ${fromModel.join(', ')} (flags override)`);
    const { engine, notice } = await createEngine(engineChoice, { threads, matmulActivations });
    note(notice);
    try {
      // keep the decoded weights across steps when they fit; a larger model streams layer by layer
      // weights stored as BF16 are held so; a factored model's experts each hold their own copy of
      // their group's basis here, so it is counted as f32 parameters (an overestimate, on the safe side)
      const factored = 'storage' in ckpt && (ckpt as { storage: string }).storage === 'factored';
      // Weights kept as stored are views of the mapped files (the native engine installs the
      // mapper): the page cache's pages, which the kernel can take back, not the process's own
      // memory. So for an original kept BF16 they do not count against the budget, and a model
      // larger than it (or than RAM) keeps every weight, paged in from the files as it is used.
      const mapped = opts.mmap && (ckpt.mapReads?.() ?? null) !== null;
      const residentBytes = factored ? parameterCounts(ckpt).total * 4 : residentWeightBytes(ckpt, { bf16Weights: opts.bf16Weights, mapped });
      const keepWeights = residentBytes <= DEFAULT_RESIDENT_BYTES;
      if (!keepWeights) note(`the model is larger than the resident-weights budget: weights are read from ${mapped ? 'the mapped files' : 'disk'} at every step (slow)`);
      const kind = 'storage' in ckpt ? `compressed (${String((ckpt as { storage: string }).storage)})` : 'original';
      note(`model: ${path.resolve(model)} (${ckpt.config.family}, ${kind}), opened in ${((performance.now() - loadStart) / 1000).toFixed(2)} s`);
      const tokens: number[] = [];
      const started = performance.now();
      let firstTokenMs: number | null = null;
      for await (const event of generate(weightProviderOf(ckpt, { bf16Weights: opts.bf16Weights }), engine, prompt, {
        tokenizer: codec,
        maxNewTokens,
        temperature,
        topK,
        topP,
        minP,
        repetitionPenalty,
        frequencyPenalty,
        presencePenalty,
        seed,
        stop: opts.stop,
        stopTokenIds: opts.ignoreEos ? [] : undefined,
        responseFormat,
        contextLength,
        keepWeights,
        // harmony's markers are special tokens, which its reader needs (the server keeps them too)
        skipSpecialTokens: reasoningParser?.format === 'harmony' ? false : undefined,
        // a response format holds the answer after the reasoning, as on the server
        reasoning: reasoning ? gateFormatOf(reasoning.parser, reasoning.state) : undefined,
      })) {
        if (event.type === 'token') {
          firstTokenMs ??= performance.now() - started;
          tokens.push(event.token);
          if (reader) show(reader.push(event.text));
          else if (!opts.json && event.text) process.stdout.write(event.text);
          continue;
        }
        if (reader) {
          show(reader.end());
          if (reasoningOpen) process.stderr.write('\n');
        }
        const seconds = (performance.now() - started) / 1000;
        const u = event.usage;
        const perSecond = u.completionTokens / seconds;
        if (opts.json) {
          process.stdout.write(
            JSON.stringify({
              ok: true,
              modelDir: path.resolve(model),
              prompt: opts.prompt,
              ...(chat !== null ? { chatPrompt: chat.text } : {}),
              text: event.text,
              ...(reader ? { reasoning: parts.reasoning, content: parts.content } : {}),
              tokens,
              usage: u,
              params: { maxNewTokens, temperature, topK, topP, minP, repetitionPenalty, frequencyPenalty, presencePenalty, seed: u.seed, stop: opts.stop, ignoreEos: opts.ignoreEos ?? false, responseFormat },
              seconds,
              timeToFirstTokenSeconds: (firstTokenMs ?? 0) / 1000,
              tokensPerSecond: perSecond,
            }) + '\n',
          );
        } else process.stdout.write('\n');
        note(`${u.completionTokens} token(s) after a ${u.promptTokens}-token prompt in ${seconds.toFixed(2)} s (${perSecond.toFixed(1)} tokens/s), finish: ${u.finishReason}, seed ${u.seed}`);
      }
    } finally {
      engine.dispose();
    }
  } finally {
    await ckpt.close();
  }
}
