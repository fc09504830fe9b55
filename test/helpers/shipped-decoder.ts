/** A decoder on one of the shipped demo models, with its tokenizer, and a decode's tokens and text as they streamed. */
import path from 'node:path';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Engine } from '../../src/engine/types.js';
import { BatchDecoder, loadTextCodec, weightProviderOf, type GenerationStream, type TextCodec } from '../../src/runtime/index.js';
import type { TokenLogprob } from '../../src/runtime/generation/logprobs.js';
import { repoRoot } from './shared-data.js';

/** `body` with a decoder on examples/models/<model> (closed after it). */
export async function withShippedDecoder<T>(engine: Engine, model: string, body: (decoder: BatchDecoder, codec: TextCodec) => Promise<T>, maxBatchSize = 4): Promise<T> {
  const dir = path.join(repoRoot, 'examples', 'models', model);
  const ckpt = await openCheckpoint(dir);
  const codec = await loadTextCodec(dir);
  const decoder = new BatchDecoder(weightProviderOf(ckpt), engine, { maxBatchSize, tokenizer: codec });
  try {
    return await body(decoder, codec);
  } finally {
    await decoder.close();
    await ckpt.close();
  }
}

export interface Decoded {
  tokens: number[];
  /** the whole text (the end event's) */
  text: string;
  finishReason: string;
  /** the streamed text after each token */
  texts: string[];
  /** each token's log-probability, where the generation reported them */
  logprobs: TokenLogprob[];
}

/** A generation's tokens and text, streamed text after each token too. */
export async function collectDecode(stream: GenerationStream): Promise<Decoded> {
  const tokens: number[] = [];
  const texts: string[] = [];
  const logprobs: TokenLogprob[] = [];
  let streamed = '';
  for await (const e of stream) {
    if (e.type !== 'token') return { tokens, text: e.text, finishReason: e.usage.finishReason, texts, logprobs };
    tokens.push(e.token);
    streamed += e.text;
    texts.push(streamed);
    if (e.logprob) logprobs.push(e.logprob);
  }
  throw new Error('no end event');
}
