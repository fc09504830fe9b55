/**
 * IBM Granite's format (granite-3.x instruct models, the Granite MoE ones included): the answer
 * is `<|tool_call|>` then a JSON array of {"name", "arguments"} objects, to the end of the message
 * (what its system prompt asks for, and how its template writes earlier calls), as vLLM's granite
 * parser reads it. The array the model opens is held to calls of the tools, as Mistral's array is,
 * and streams as it is written.
 */
import { callsOfJson, type ToolCallFormat } from './format.js';
import { jsonCallsStreamer } from '../streamed-calls.js';

const START = '<|tool_call|>';

export const granite: ToolCallFormat = {
  name: 'granite',
  start: START,
  end: null,
  heldCall: 'array',
  streamer: jsonCallsStreamer(true),
  parse: (body) => callsOfJson(body),
  detect: (template) => template.includes(START),
};
