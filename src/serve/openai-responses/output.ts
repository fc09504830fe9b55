/**
 * The answer of POST /v1/responses in the Responses API's shapes: a `response` object whose
 * `output` holds a reasoning item (with a reasoning parser), a message item (`output_text`) and
 * function_call items, in the order the model wrote them; or, streamed, the typed events that
 * build it (`response.created`, `response.output_item.added`, `response.output_text.delta`, …,
 * `response.completed`), each with its `sequence_number`, as `event:` and
 * `data:` lines. Both are built from the same per-choice deltas as the chat responses
 * (tools/call-readers.ts, reasoning.ts), so a stream adds up to the whole response.
 */
import { randomBytes } from 'node:crypto';
import type { GenerationEvent } from '../../runtime/generation/decoder.js';
import { ReasoningTextReader } from '../reasoning.js';
import { choiceReader, observe, once, openEventStream, type ResponseArgs } from '../responses.js';
import type { CallReader, ChoiceDelta } from '../tools/call-readers.js';
import type { ResponsesRequest } from './request.js';

type EndEvent = Extract<GenerationEvent, { type: 'end' }>;
type Item = Record<string, unknown> & { id: string; type: string };
export type Emit = (type: string, fields: Record<string, unknown>) => void;

const idOf = (prefix: string) => `${prefix}_${randomBytes(24).toString('hex')}`;
/** the response's id: the client's request id where it gave one (request_id, or the X-Request-Id header) */
const responseIdOf = (a: ResponseArgs) => (a.p.requestId !== null ? `resp_${a.p.requestId}` : idOf('resp'));

/** Output items from deltas: each delta extends the open item or closes it and opens the next, with the events a stream sends for that. */
export class OutputBuilder {
  readonly items: Item[] = [];
  private open: { item: Item; text: string } | null = null;

  constructor(private readonly emit: Emit | null) {}

  push(deltas: readonly ChoiceDelta[]): void {
    for (const d of deltas) {
      if (d.kind === 'reasoning') this.text('reasoning', d.text);
      else if (d.kind === 'content') this.text('message', d.text);
      else if (d.kind === 'call') {
        this.close('completed');
        const item: Item = { id: idOf('fc'), type: 'function_call', status: 'in_progress', call_id: d.id, name: d.name, arguments: '' };
        this.start(item);
        this.arguments(d.arguments);
      } else this.arguments(d.text);
    }
  }

  /** closes the last item: completed, or incomplete where the generation was cut short */
  finish(status: 'completed' | 'incomplete'): void {
    this.close(status);
  }

  private get index(): number {
    return this.items.length - 1;
  }

  private start(item: Item): void {
    this.items.push(item);
    this.open = { item, text: '' };
    this.emit?.('response.output_item.added', { output_index: this.index, item: structuredClone(item) });
  }

  private text(type: 'reasoning' | 'message', delta: string): void {
    if (!delta) return;
    if (this.open?.item.type !== type) {
      this.close('completed');
      const item: Item = type === 'message' ? { id: idOf('msg'), type, status: 'in_progress', role: 'assistant', content: [] } : { id: idOf('rs'), type, summary: [], content: [] };
      this.start(item);
      const part = type === 'message' ? { type: 'output_text', text: '', annotations: [], logprobs: [] } : { type: 'reasoning_text', text: '' };
      this.emit?.('response.content_part.added', { item_id: item.id, output_index: this.index, content_index: 0, part });
    }
    this.open!.text += delta;
    const event = type === 'message' ? 'response.output_text.delta' : 'response.reasoning_text.delta';
    this.emit?.(event, { item_id: this.open!.item.id, output_index: this.index, content_index: 0, delta, ...(type === 'message' ? { logprobs: [] } : {}) });
  }

  private arguments(delta: string): void {
    const open = this.open!;
    open.item.arguments = (open.item.arguments as string) + delta;
    if (delta) this.emit?.('response.function_call_arguments.delta', { item_id: open.item.id, output_index: this.index, delta });
  }

  private close(status: 'completed' | 'incomplete'): void {
    const open = this.open;
    if (!open) return;
    this.open = null;
    const { item } = open;
    const at = { item_id: item.id, output_index: this.index, content_index: 0 };
    if (item.type === 'message') {
      const part = { type: 'output_text', text: open.text, annotations: [], logprobs: [] };
      item.content = [part];
      item.status = status;
      this.emit?.('response.output_text.done', { ...at, text: open.text, logprobs: [] });
      this.emit?.('response.content_part.done', { ...at, part });
    } else if (item.type === 'reasoning') {
      const part = { type: 'reasoning_text', text: open.text };
      item.content = [part];
      this.emit?.('response.reasoning_text.done', { ...at, text: open.text });
      this.emit?.('response.content_part.done', { ...at, part });
    } else {
      item.status = status;
      this.emit?.('response.function_call_arguments.done', { item_id: item.id, output_index: this.index, arguments: item.arguments });
    }
    this.emit?.('response.output_item.done', { output_index: this.index, item: structuredClone(item) });
  }
}

/** The reader of the choice's text: reasoning apart (with a parser), calls read (with tools), or plain content. */
function readerOf(a: ResponseArgs): CallReader {
  return choiceReader(a.p) ?? { calls: 0, push: (text) => (text ? [{ kind: 'content', text }] : []), end: () => [] };
}

/** The response object around its output. */
function responseObject(req: ResponsesRequest, a: ResponseArgs, id: string, created: number, status: string, output: Item[], end: EndEvent | null, reasoningTokens: number): Record<string, unknown> {
  const input = a.p.prompts[0].ids.length;
  const generated = end?.usage.completionTokens ?? 0;
  return {
    id,
    object: 'response',
    created_at: created,
    status,
    ...(status === 'completed' ? { completed_at: Math.floor(Date.now() / 1000) } : {}),
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: req.instructions ?? null,
    max_output_tokens: req.max_output_tokens ?? null,
    model: a.p.model.id,
    output,
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: req.reasoning?.effort ?? null, summary: null },
    store: false,
    temperature: a.p.params.temperature ?? 1,
    text: { format: req.text?.format ?? { type: 'text' } },
    tool_choice: req.tool_choice ?? (req.tools?.length ? 'auto' : 'none'),
    tools: (req.tools ?? []).map((t) => ({ ...t, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null })),
    top_p: a.p.params.topP ?? 1,
    truncation: 'disabled',
    metadata: req.metadata ?? {},
    usage:
      end === null
        ? null
        : { input_tokens: input, input_tokens_details: { cached_tokens: 0 }, output_tokens: generated, output_tokens_details: { reasoning_tokens: reasoningTokens }, total_tokens: input + generated },
  };
}

/** Reads the choice's events into the builder; the end event (null: the client left), and how many tokens were reasoning. */
async function read(a: ResponseArgs, builder: OutputBuilder): Promise<{ end: EndEvent | null; reasoningTokens: number }> {
  const { prompt, stream } = a.choices[0];
  const reader = readerOf(a);
  const reasoning = reader instanceof ReasoningTextReader ? reader : null;
  const firstToken = once(a.onFirstToken);
  let reasoningTokens = 0;
  for await (const event of stream) {
    if (event.type !== 'token') {
      if (event.usage.finishReason === 'abort') return { end: null, reasoningTokens };
      builder.push(reader.end());
      builder.finish(event.usage.finishReason === 'length' ? 'incomplete' : 'completed');
      return { end: event, reasoningTokens };
    }
    observe(a, firstToken, prompt, event);
    const before = reasoning?.inReasoning ?? false;
    const deltas = event.text ? reader.push(event.text) : [];
    if (before || (reasoning?.inReasoning ?? false)) reasoningTokens++;
    builder.push(deltas);
  }
  return { end: null, reasoningTokens };
}

const statusOf = (end: EndEvent) => (end.usage.finishReason === 'length' ? 'incomplete' : 'completed');

export async function responsesJson(a: ResponseArgs, req: ResponsesRequest): Promise<void> {
  const id = responseIdOf(a);
  const created = Math.floor(Date.now() / 1000);
  const builder = new OutputBuilder(null);
  const { end, reasoningTokens } = await read(a, builder);
  if (end === null) return; // the client is gone
  a.count(200);
  a.reply.send(responseObject(req, a, id, created, statusOf(end), builder.items, end, reasoningTokens));
}

export async function responsesStream(a: ResponseArgs, req: ResponsesRequest): Promise<void> {
  const id = responseIdOf(a);
  const created = Math.floor(Date.now() / 1000);
  const raw = openEventStream(a.reply);
  let sequence = 0;
  const emit: Emit = (type, fields) => {
    if (!raw.writableEnded && !raw.destroyed) raw.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`);
  };
  const builder = new OutputBuilder(emit);
  const pending = responseObject(req, a, id, created, 'in_progress', [], null, 0);
  emit('response.created', { response: pending });
  emit('response.in_progress', { response: pending });
  const { end, reasoningTokens } = await read(a, builder);
  if (end !== null) {
    const status = statusOf(end);
    // always response.completed, its response's status incomplete where the limit cut it (as vLLM
    // sends it): OpenAI's own response.incomplete ends the stream for the Node client, but the
    // Python client's stream helper waits for response.completed and raises without it
    emit('response.completed', { response: responseObject(req, a, id, created, status, builder.items, end, reasoningTokens) });
    a.count(200);
  }
  if (!raw.writableEnded) raw.end();
}

/** An error after the stream began, as the Responses API streams one. */
export function responsesStreamError(body: { error: { message: string; type: string; param: string | null; code: string | null } }): string {
  const { message, param, code } = body.error;
  return `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 0, message, param, code: code ?? body.error.type })}\n\n`;
}
