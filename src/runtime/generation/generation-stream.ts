/**
 * The events of one generation request (its tokens as they are produced, then its usage) as an
 * async iterator, fed by the BatchDecoder that decodes it. Breaking out of the iteration aborts
 * the request, as a client that disconnects does.
 */
import type { TokenLogprob } from './logprobs.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
  finishReason: FinishReason;
  /** the sampling seed used (drawn at random when the request gave none) */
  seed: number;
}

export type GenerationEvent =
  /** one generated token; `text` is the newly decodable completion text (may be empty) */
  | { type: 'token'; token: number; text: string; logprob?: TokenLogprob; promptLogprobs?: Array<TokenLogprob | null> }
  /** always the last event; `text` is the whole completion text (stop string excluded) */
  | { type: 'end'; usage: GenerationUsage; text: string };

/** The events of one request, as an async iterator. Breaking out of a for-await aborts it. */
export class GenerationStream implements AsyncIterable<GenerationEvent> {
  private readonly queue: GenerationEvent[] = [];
  private failure: unknown = null;
  private ended = false;
  private wake: (() => void) | null = null;
  /** resolves with the final usage and text (rejects if the forward pass failed) */
  readonly result: Promise<{ usage: GenerationUsage; text: string }>;
  private settle!: { resolve(v: { usage: GenerationUsage; text: string }): void; reject(e: unknown): void };

  constructor(
    readonly id: number,
    readonly promptTokens: number,
    private readonly onAbort: () => void,
  ) {
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => undefined); // consumers that only iterate see the error there
  }

  /** Stop this request (as a disconnecting client does); its stream then ends with finishReason 'abort'. */
  abort(): void {
    // an ended request has nothing left to stop (and its cache may still serve others' prompts)
    if (!this.ended) this.onAbort();
  }

  /** @internal */
  push(event: GenerationEvent): void {
    this.queue.push(event);
    if (event.type === 'end') {
      this.ended = true;
      this.settle.resolve({ usage: event.usage, text: event.text });
    }
    this.wake?.();
  }

  /** @internal */
  fail(err: unknown): void {
    this.failure = err;
    this.ended = true;
    this.settle.reject(err);
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<GenerationEvent> {
    let finished = false;
    try {
      for (;;) {
        const event = this.queue.shift();
        if (event) {
          yield event;
          if (event.type === 'end') {
            finished = true;
            return;
          }
          continue;
        }
        if (this.failure !== null) {
          finished = true;
          throw this.failure;
        }
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
      }
    } finally {
      if (!finished) this.abort();
    }
  }
}
