/**
 * The Responses API's output items and stream events from a choice's deltas (OutputBuilder), for
 * the mixes a tiny model cannot be made to write: reasoning, then text, then calls (one whose
 * arguments come in pieces), then text again. Independent truth: the official openai client's own
 * accumulator (accumulateResponse), which checks each event against those before it, must build
 * from the events the same output the builder returns.
 */
import { accumulateResponse } from 'openai/lib/responses/ResponseAccumulator';
import type { Response, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { describe, expect, it } from 'vitest';
import { OutputBuilder } from '../../src/serve/openai-responses/output.js';
import type { ChoiceDelta } from '../../src/serve/tools/call-readers.js';

function build(deltas: ChoiceDelta[][], status: 'completed' | 'incomplete') {
  const events: ResponseStreamEvent[] = [];
  let sequence = 0;
  const b = new OutputBuilder((type, fields) => events.push({ type, sequence_number: sequence++, ...fields } as unknown as ResponseStreamEvent));
  const shell = { id: 'resp_1', object: 'response', created_at: 0, status: 'in_progress', model: 'm', output: [], error: null, incomplete_details: null, instructions: null, metadata: {}, parallel_tool_calls: true, temperature: 1, tool_choice: 'auto', tools: [], top_p: 1 };
  let snapshot = accumulateResponse({ type: 'response.created', sequence_number: sequence++, response: shell } as unknown as ResponseStreamEvent);
  for (const d of deltas) b.push(d);
  b.finish(status);
  for (const e of events) snapshot = accumulateResponse(e, snapshot);
  return { items: b.items, snapshot: snapshot as Response, events };
}

describe('Responses output items and events', () => {
  it('reasoning, text, a call in pieces, a whole call and text again: the client accumulates the builder’s own items', () => {
    const { items, snapshot, events } = build(
      [
        [{ kind: 'reasoning', text: 'Let me ' }],
        [{ kind: 'reasoning', text: 'think.' }],
        [{ kind: 'content', text: 'I will ask ' }, { kind: 'content', text: 'twice.' }],
        [{ kind: 'call', index: 0, id: 'call_a', name: 'get_weather', arguments: '{"city": ' }],
        [{ kind: 'arguments', index: 0, text: '"Verona"}' }],
        [{ kind: 'call', index: 1, id: 'call_b', name: 'ring', arguments: '{}' }],
        [{ kind: 'content', text: 'Done.' }],
      ],
      'completed',
    );
    expect(items.map((i) => i.type)).toEqual(['reasoning', 'message', 'function_call', 'function_call', 'message']);
    expect(snapshot.output).toEqual(items);
    expect(items[0]).toMatchObject({ content: [{ type: 'reasoning_text', text: 'Let me think.' }] });
    expect(items[1]).toMatchObject({ role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'I will ask twice.' }] });
    expect(items[2]).toMatchObject({ call_id: 'call_a', name: 'get_weather', arguments: '{"city": "Verona"}', status: 'completed' });
    expect(items[3]).toMatchObject({ call_id: 'call_b', arguments: '{}' });
    expect(new Set(items.map((i) => i.id)).size).toBe(items.length);
    // each item added, then done, in order
    const lifecycle = events.filter((e) => e.type === 'response.output_item.added' || e.type === 'response.output_item.done').map((e) => `${e.type.slice(21)} ${(e as { output_index: number }).output_index}`);
    expect(lifecycle).toEqual(['added 0', 'done 0', 'added 1', 'done 1', 'added 2', 'done 2', 'added 3', 'done 3', 'added 4', 'done 4']);
  });

  it('a message cut by the limit is incomplete; no deltas make no items', () => {
    const { items, snapshot } = build([[{ kind: 'content', text: 'Half a' }]], 'incomplete');
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ status: 'incomplete', content: [{ text: 'Half a' }] });
    expect(snapshot.output).toEqual(items);
    expect(build([], 'completed').items).toEqual([]);
  });
});
