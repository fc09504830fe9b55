/**
 * What the readers of held blocks of one call or more share (minimax-m2-stream.ts,
 * deepseek-stream.ts): the block's text read step by step, its calls counted, and a block from
 * which no call comes handed back as it was written. Each format reads its own tags (`step`).
 */
import type { ChoiceDelta } from '../call-readers.js';
import type { FunctionTool } from '../call-schema.js';
import type { CallStream, OpenCall } from './format.js';

export abstract class BlockCallStream implements CallStream {
  done = false;
  /** text read and not yet understood */
  protected buffer = '';
  /** calls this block has opened */
  protected calls = 0;
  /** the block's text while no call has come of it (handed back where none does) */
  private raw = '';

  constructor(
    protected readonly tools: readonly FunctionTool[],
    protected readonly open: OpenCall,
  ) {}

  /** One step of reading the buffer; false where it needs more text, or the block's calls ended (`done`). */
  protected abstract step(deltas: ChoiceDelta[]): boolean;

  push(text: string): { deltas: ChoiceDelta[]; rest: string } {
    const deltas: ChoiceDelta[] = [];
    this.buffer += text;
    if (this.calls === 0) this.raw += text;
    while (!this.done && this.step(deltas));
    if (!this.done) return { deltas, rest: '' };
    // what follows the calls' end is the block reader's
    const rest = this.buffer;
    this.buffer = '';
    if (this.calls === 0) deltas.push({ kind: 'content', text: this.raw.slice(0, this.raw.length - rest.length) });
    return { deltas, rest };
  }

  /** What is left when the generation ends: a block cut before its first call, as written. */
  end(): ChoiceDelta[] {
    return this.calls === 0 && !this.done ? [{ kind: 'content', text: this.raw }] : [];
  }
}
