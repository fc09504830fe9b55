/**
 * A held MiniMax-M2 block read as it is written (minimax-m2.ts's format, held to its pattern):
 * each call goes out whole, name and arguments, when its `</invoke>` is written, as vLLM's
 * minimax_m2 parser streams them; the whole-block reader gives the same calls. The block's end
 * (`</minimax:tool_call>`, or any text that is not an invoke) is left to the block's reader. An
 * invoke cut short by the end of the generation goes out with what was written of it, as the
 * whole-block reader reads it.
 */
import { partialTagAtEnd, type ChoiceDelta } from '../call-readers.js';
import { BlockCallStream } from './block-call-stream.js';
import { invokesOf } from './minimax-m2-values.js';

const INVOKE_OPEN = '<invoke';
const INVOKE_CLOSE = '</invoke>';

export class MinimaxM2CallStream extends BlockCallStream {
  protected step(deltas: ChoiceDelta[]): boolean {
    const rest = this.buffer.trimStart();
    if (rest.startsWith(INVOKE_OPEN)) {
      const close = rest.indexOf(INVOKE_CLOSE);
      if (close < 0) return false;
      this.emit(rest.slice(0, close + INVOKE_CLOSE.length), deltas);
      this.buffer = rest.slice(close + INVOKE_CLOSE.length);
      return true;
    }
    // whitespace, or what may still become an invoke
    if (rest.length === 0 || (rest.length < INVOKE_OPEN.length && partialTagAtEnd(rest, INVOKE_OPEN) === rest.length)) return false;
    this.done = true;
    this.buffer = rest;
    return false;
  }

  /** An invoke cut short by the end of the generation goes out with what was written of it. */
  override end(): ChoiceDelta[] {
    const rest = this.buffer.trimStart();
    if (!rest.startsWith(INVOKE_OPEN)) return super.end();
    const deltas: ChoiceDelta[] = [];
    this.emit(rest, deltas);
    this.buffer = '';
    return deltas;
  }

  /** One invoke's text (whole, or cut short): its call, when it names a function. */
  private emit(invoke: string, deltas: ChoiceDelta[]): void {
    for (const call of invokesOf(invoke, this.tools)) {
      const { index, id } = this.open();
      this.calls++;
      deltas.push({ kind: 'call', index, id, name: call.name, arguments: call.arguments });
    }
  }
}
