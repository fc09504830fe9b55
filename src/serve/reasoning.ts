/**
 * Reasoning models' thinking apart from their answer, as vLLM's reasoning parsers give it: a
 * chat message's `reasoning_content` (and `reasoning`, the name vLLM moved to; clients read one
 * or the other) holds the text between `<think>` and `</think>`, `content` what follows. Set by
 * `rfid-moe serve --reasoning-parser qwen3|deepseek_r1|glm45|minimax_m2` (off by default, as in vLLM: without
 * it the thinking stays in the content).
 *
 * Where a completion starts is read from its prompt (reasoningStart): inside the block when the
 * template opened it (DeepSeek-R1's and the Qwen3 thinking models' templates end the prompt in
 * `<think>\n`), in the answer when the template closed an empty one (Qwen3 with enable_thinking
 * false, GLM-4.5 with it false), and otherwise the model may open it itself (Qwen3's hybrid models
 * and GLM-4.5 write `<think>` first). A block that the generation never closes is all reasoning, and its content null.
 */
import type { ReasoningFormat, ReasoningStart } from '../runtime/generation/reasoning-gate.js';
import type { AddressedCalls } from '../runtime/generation/addressed-call-prefix.js';
import { argumentsSchema, type FunctionTool } from './tools/call-schema.js';
import { partialTagAtEnd, type CallReader, type ChoiceDelta } from './tools/call-readers.js';

export interface ReasoningParser {
  /** the name `rfid-moe serve --reasoning-parser` takes */
  readonly name: string;
  /** where the reasoning starts and where the answer does: what a response format waits for (ReasoningGate) */
  readonly start: string;
  readonly end: string;
  /** 'tags': `start` … `end` (ReasoningReader); 'harmony': gpt-oss's channels (harmony.ts), read with the special tokens kept */
  readonly format: 'tags' | 'harmony';
  /**
   * how the model addresses a function call in a message header of its own (gpt-oss's), which the
   * server holds to the tools the request lets it call (gateFormatOf); absent: the model has no such call
   */
  readonly addressedCalls?: Omit<AddressedCalls, 'functions'>;
}

const think = (name: string): ReasoningParser => ({ name, start: '<think>', end: '</think>', format: 'tags' });

/**
 * gpt-oss under a response format: a completion that opens a channel writes freely until the
 * final channel's body begins (its header's last words, wherever the channel marker fell among
 * the tokens), and one that writes anything else first is the answer at once (HarmonyReader reads
 * text outside any message as content).
 */
const CHANNEL_OPENS = '<|channel|>';
const FINAL_OPENS = 'final<|message|>';

/**
 * How gpt-oss calls a function its own way: a message addressed `to=functions.NAME`, whose header
 * goes on to the body (`… <|constrain|>json<|message|>`, or `<|channel|>commentary json<|message|>`
 * where the address comes first) and whose body is the arguments. The server holds such a call from
 * its address on (addressed-call-prefix.ts): NAME one of the functions the request allows, the
 * header within a message (no end or new start in it), the body valid under NAME's parameters.
 */
const GPT_OSS_CALLS: Omit<AddressedCalls, 'functions'> = {
  trigger: 'to=functions.',
  bodyOpens: '<|message|>',
  refuses: ['<|start|>', '<|end|>', '<|return|>', '<|call|>'],
};

/**
 * The parsers by name: these families write `<think>…</think>` (vLLM's qwen3, deepseek_r1, glm45
 * and minimax_m2 parsers; MiniMax-M2's template, like R1's, ends the prompt in `<think>\n`);
 * gpt-oss writes harmony's channels (vLLM's openai_gptoss: the analysis channel is the reasoning,
 * and a response format waits for the final channel).
 */
export const REASONING_PARSERS: ReadonlyMap<string, ReasoningParser> = new Map(
  [think('qwen3'), think('deepseek_r1'), think('glm45'), think('minimax_m2'), { name: 'openai_gptoss', start: CHANNEL_OPENS, end: FINAL_OPENS, format: 'harmony', addressedCalls: GPT_OSS_CALLS } as const].map((p) => [p.name, p]),
);

/**
 * The parser a model gets when none is named for it: gpt-oss's, whose only output format is
 * harmony (vLLM reads every gpt-oss model's chat answers so); none for the others, whose thinking
 * stays in the content unless a parser is named (Qwen3's hybrids write it only sometimes).
 */
export function defaultReasoningParser(family: string): ReasoningParser | null {
  return family === 'gpt_oss' ? REASONING_PARSERS.get('openai_gptoss')! : null;
}

/**
 * What a response format waits for under this parser (GenerationParams.reasoning): its tags, where
 * the completion starts, and the functions a call the model addresses its own way may name
 * (`callable`, the request's tools as its tool choice allows them; null: none are held).
 */
export function gateFormatOf(parser: ReasoningParser, state: ReasoningStart, callable: readonly FunctionTool[] | null = null): ReasoningFormat {
  const addressedCalls = parser.addressedCalls && callable?.length ? { ...parser.addressedCalls, functions: callable.map((f) => ({ name: f.name, schema: argumentsSchema(f) })) } : undefined;
  return { start: parser.start, end: parser.end, ...(addressedCalls ? { addressedCalls } : {}), state };
}

/** Where a completion of this prompt starts: inside a reasoning block the prompt opened, in the answer after one it closed, or either. */
export function reasoningStart(prompt: string, parser: ReasoningParser): ReasoningStart {
  // harmony: the model writes each message's header itself, the first right after the prompt
  if (parser.format === 'harmony') return 'maybe';
  const opened = prompt.lastIndexOf(parser.start);
  const closed = prompt.lastIndexOf(parser.end);
  if (opened > closed) return 'reasoning';
  if (closed >= 0 && prompt.trimEnd().endsWith(parser.end)) return 'answer';
  return 'maybe';
}

/**
 * What the readers that tell reasoning from the answer share (ReasoningReader; HarmonyReader,
 * harmony.ts): text is held in `buffer` until `drain` can tell what it is, and the answer goes to
 * an inner reader (tool calls, a held call) where there is one, which ends with them.
 */
export abstract class ReasoningTextReader implements CallReader {
  protected buffer = '';

  constructor(protected readonly inner: CallReader | null) {}

  abstract get calls(): number;
  /** inside the reasoning (for the Responses API's reasoning token count) */
  abstract get inReasoning(): boolean;

  push(text: string): ChoiceDelta[] {
    this.buffer += text;
    return this.drain(false);
  }

  end(): ChoiceDelta[] {
    const out = this.drain(true);
    if (this.inner) out.push(...this.inner.end());
    return out;
  }

  /** the deltas that can go out now; `final`: the text has ended, nothing more is held */
  protected abstract drain(final: boolean): ChoiceDelta[];
}

/**
 * One choice's text split into reasoning and the rest, piece by piece: reasoning deltas, then the
 * answer's text handed to `inner` (a tool-call reader) or given as content. Text that may be the
 * beginning of a tag is held until it is told apart.
 */
export class ReasoningReader extends ReasoningTextReader {
  private state: ReasoningStart;

  constructor(
    private readonly parser: ReasoningParser,
    start: ReasoningStart,
    inner: CallReader | null,
    /** false: the reasoning is read (to find the answer) but given out as nothing (vLLM's include_reasoning) */
    private readonly include = true,
  ) {
    super(inner);
    this.state = start;
  }

  get calls(): number {
    return this.inner?.calls ?? 0;
  }

  /** inside the reasoning block (the text so far opened it and has not closed it) */
  get inReasoning(): boolean {
    return this.state === 'reasoning';
  }

  protected drain(final: boolean): ChoiceDelta[] {
    const out: ChoiceDelta[] = [];
    if (this.state === 'maybe') {
      const lead = this.buffer.trimStart();
      if (lead.startsWith(this.parser.start)) {
        this.buffer = lead.slice(this.parser.start.length);
        this.state = 'reasoning';
      } else if (!final && this.parser.start.startsWith(lead)) {
        return out; // whitespace, or a beginning of the tag: not told apart yet
      } else this.state = 'answer';
    }
    if (this.state === 'reasoning') {
      const at = this.buffer.indexOf(this.parser.end);
      if (at < 0) {
        const keep = final ? 0 : partialTagAtEnd(this.buffer, this.parser.end);
        const text = this.buffer.slice(0, this.buffer.length - keep);
        this.buffer = this.buffer.slice(this.buffer.length - keep);
        if (text && this.include) out.push({ kind: 'reasoning', text });
        return out;
      }
      if (at > 0 && this.include) out.push({ kind: 'reasoning', text: this.buffer.slice(0, at) });
      this.buffer = this.buffer.slice(at + this.parser.end.length);
      this.state = 'answer';
    }
    const text = this.buffer;
    this.buffer = '';
    if (text) {
      if (this.inner) out.push(...this.inner.push(text));
      else out.push({ kind: 'content', text });
    }
    return out;
  }
}
