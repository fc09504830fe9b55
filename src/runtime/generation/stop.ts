/**
 * Streaming detokenisation with stop strings. Text is produced by decoding all completion ids so
 * far (a multi-byte character split across tokens decodes to U+FFFD until its last byte arrives,
 * so a trailing U+FFFD is held back), and any tail that could still grow into a stop string is
 * held back too, so a stop string never reaches the client, not even in part.
 */
export interface TextDecoderLike {
  decode(ids: number[]): string;
}

export class StopTextStream {
  private readonly ids: number[] = [];
  /** characters of the completion text already emitted */
  private emitted = 0;
  private text = '';
  private stopped = false;

  constructor(
    private readonly decoder: TextDecoderLike | undefined,
    private readonly stops: readonly string[],
  ) {
    if (stops.length > 0 && !decoder) throw new Error('stop strings need a tokenizer to decode the generated text');
  }

  /** Adds a generated token; returns the new text to emit and whether a stop string was completed. */
  push(id: number): { text: string; stop: boolean } {
    if (this.stopped) return { text: '', stop: true };
    this.ids.push(id);
    if (!this.decoder) return { text: '', stop: false };
    const text = this.decoder.decode(this.ids);
    this.text = text;
    // a stop string can only end within the newly decoded part: search from where one could start
    const longest = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
    const from = Math.max(0, this.emitted - longest + 1);
    let cut = -1;
    for (const s of this.stops) {
      const at = text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = text.slice(this.emitted, Math.max(cut, this.emitted));
      this.emitted = Math.max(cut, this.emitted);
      this.text = text.slice(0, this.emitted);
      return { text: out, stop: true };
    }
    let safe = text.length;
    while (safe > this.emitted && text.charCodeAt(safe - 1) === 0xfffd) safe--;
    safe = Math.max(this.emitted, safe - heldForStop(text.slice(0, safe), this.stops));
    const out = text.slice(this.emitted, safe);
    this.emitted = safe;
    return { text: out, stop: false };
  }

  /** At the end of generation: whatever was held back (an unfinished stop-string prefix, a partial character). */
  flush(): string {
    if (this.stopped || !this.decoder) return '';
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
