/**
 * The independent truth of the chat suites: transformers renders each conversation with the
 * model's chat template and decodes greedily from it (scripts/hf_chat_reference.py). Apart from
 * helpers.ts, which every serving suite imports, so that only suites that need Python look for it.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pythonPath } from '../helpers/python.js';
import { repoRoot } from '../helpers/shared-data.js';

/** transformers' rendering of a conversation, its token ids and its greedy continuation (scripts/hf_chat_reference.py). */
export interface ChatReference {
  text: string;
  ids: number[];
  generated: number[];
}

/** A conversation for hf_chat_reference.py: messages, or messages with template kwargs, apply_chat_template options and tools. */
export type ReferenceConversation = unknown[] | { messages: unknown[]; kwargs?: Record<string, unknown>; options?: Record<string, unknown>; tools?: unknown[] | null; tokenizer?: string };

/** transformers' reference for each conversation with the model in `dir`, `newTokens` greedy tokens each (needs the venv). */
export function hfChatReference(dir: string, conversations: ReferenceConversation[], newTokens: number): ChatReference[] {
  const out = execFileSync(pythonPath, [path.join(repoRoot, 'scripts', 'hf_chat_reference.py')], {
    input: JSON.stringify({ model: dir, newTokens, conversations }),
    env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error', HF_HUB_DISABLE_PROGRESS_BARS: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 300_000,
  });
  return (JSON.parse(out.toString()) as { results: ChatReference[] }).results;
}

