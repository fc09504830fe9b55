/**
 * The reader of a choice's text under a reasoning parser: HarmonyReader for gpt-oss's channels,
 * ReasoningReader for `<think>` tags. The server's chat endpoint and `generate --chat` read alike.
 * A module of its own because harmony.ts builds on reasoning.ts.
 */
import { HarmonyReader, type HarmonyCalls } from './harmony.js';
import { ReasoningReader, type ReasoningParser, type ReasoningTextReader } from './reasoning.js';
import type { ReasoningStart } from '../runtime/generation/reasoning-gate.js';
import type { CallReader } from './tools/call-readers.js';

export function reasoningReaderOf(
  parser: ReasoningParser,
  start: ReasoningStart,
  /** where the answer goes (tool calls, a held call); null: it is content */
  inner: CallReader | null = null,
  /** false: the reasoning is read but given out as nothing (vLLM's include_reasoning) */
  include = true,
  /** harmony: the functions whose messages are calls; null: none are */
  calls: HarmonyCalls | null = null,
): ReasoningTextReader {
  return parser.format === 'harmony' ? new HarmonyReader(include, inner, calls) : new ReasoningReader(parser, start, inner, include);
}
