/**
 * Streaming detokenisation with stop strings. New text is found incrementally, as vLLM does:
 * the ids from `prefixOffset` on are decoded and compared with the decoding of the ids from
 * `prefixOffset` to `readOffset` (the text already produced from that window), so each step
 * decodes a few tokens instead of the whole completion, and a tokenizer that changes the first
 * piece of a window (SentencePiece's leading space) changes both sides alike. A multi-byte
 * character split across tokens decodes to U+FFFD until its last byte arrives, so a trailing
 * U+FFFD waits. Any tail that could still grow into a stop string is held back too, so a stop
 * string never reaches the client, not even in part (unless it is to be included: vLLM's
 * include_stop_str_in_output).
 */
export interface TextDecoderLike {
  /** the text of `ids`; special tokens (EOS, chat markers) are left out unless skipSpecialTokens is false */
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
}

export interface StopTextOptions {
  /** keep the stop string that ended the text at its end (default false: cut before it) */
  includeStop?: boolean;
  /** leave special tokens out of the text (default true) */
  skipSpecialTokens?: boolean;
}

export class StopTextStream {
  private readonly ids: number[] = [];
  /** characters of the completion text already emitted */
  private emitted = 0;
  /** the completion text decoded so far */
  private text = '';
  private stopped = false;
  /** ids [prefixOffset, readOffset) produced the end of `text`; later ids are not in it yet */
  private prefixOffset = 0;
  private readOffset = 0;

  /** text before this position is not searched for stop strings (GenerationParams.minNewTokens) */
  private checkFrom = 0;

  constructor(
    private readonly decoder: TextDecoderLike | undefined,
    private readonly stops: readonly string[],
    private readonly options: StopTextOptions = {},
  ) {
    if (stops.length > 0 && !decoder) throw new Error('stop strings need a tokenizer to decode the generated text');
  }

  private decode(from: number, to: number = this.ids.length): string {
    return to > from ? this.decoder!.decode(this.ids.slice(from, to), { skipSpecialTokens: this.options.skipSpecialTokens ?? true }) : '';
  }

  /**
   * Adds a generated token; returns the new text to emit and whether a stop string was completed.
   * With `checkStops` false (a token within the minimum length) no stop string can end in the
   * text this token adds, as vLLM does for min_tokens.
   */
  push(id: number, checkStops = true): { text: string; stop: boolean } {
    if (this.stopped) return { text: '', stop: true };
    this.ids.push(id);
    if (!this.decoder) return { text: '', stop: false };
    const before = this.decode(this.prefixOffset, this.readOffset);
    const after = this.decode(this.prefixOffset);
    if (after.length > before.length && !after.endsWith('\uFFFD')) {
      this.text += after.slice(before.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
    }
    const text = this.text;
    // a stop string can only end within the newly decoded part: search from where one could start
    const longest = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
    const from = Math.max(0, this.emitted - longest + 1);
    let cut = -1;
    let end = -1;
    if (!checkStops) this.checkFrom = text.length;
    else {
      for (const s of this.stops) {
        // a match must end in text that may hold one: after checkFrom
        const at = text.indexOf(s, Math.max(from, this.checkFrom - s.length + 1));
        if (at >= 0 && (cut < 0 || at < cut)) {
          cut = at;
          end = at + s.length;
        }
      }
    }
    if (cut >= 0) {
      this.stopped = true;
      const until = Math.max(this.options.includeStop ? end : cut, this.emitted);
      const out = text.slice(this.emitted, until);
      this.emitted = until;
      this.text = text.slice(0, until);
      return { text: out, stop: true };
    }
    const safe = Math.max(this.emitted, text.length - heldForStop(text, this.stops));
    const out = text.slice(this.emitted, safe);
    this.emitted = safe;
    return { text: out, stop: false };
  }

  /** At the end of generation: whatever was held back (an unfinished stop-string prefix, a partial character). */
  flush(): string {
    if (this.stopped || !this.decoder) return '';
    // ids still waiting for the rest of a character decode as they are (U+FFFD), as a full decode would
    if (this.readOffset < this.ids.length) {
      const before = this.decode(this.prefixOffset, this.readOffset);
      this.text += this.decode(this.prefixOffset).slice(before.length);
      this.prefixOffset = this.readOffset = this.ids.length;
    }
    const out = this.text.slice(this.emitted);
    this.emitted = this.text.length;
    return out;
  }

  /** the completion text emitted so far */
  get completion(): string {
    return this.text.slice(0, this.emitted);
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
function heldForStop(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > held; n--) {
      if (text.endsWith(s.slice(0, n))) {
        held = n;
        break;
      }
    }
  }
  return held;
}
