/**
 * Vercel's AI SDK against `rfid-moe serve` (start the server first):
 *
 *   npx rfid-moe serve examples/models/mixtral-tiny-shakespeare
 *   npx tsx examples/ai-sdk.ts            # or RFID_MOE_URL=http://host:port/v1
 *
 * The shipped models have no chat template, so this uses the completion endpoint; a model with one
 * takes `provider.chatModel(id)` and the SDK's chat features (generateObject, tools) as well.
 */
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { APICallError, generateText, streamText } from 'ai';

const provider = createOpenAICompatible({ name: 'rfid-moe', baseURL: process.env.RFID_MOE_URL ?? 'http://127.0.0.1:8000/v1', includeUsage: true });
const model = provider.completionModel('mixtral-tiny-shakespeare');

// one completion (the SDK writes the prompt as "user:\n…\n\nassistant:\n")
const done = await generateText({ model, prompt: 'ROMEO:', maxOutputTokens: 32, temperature: 0 });
console.log(done.text, '\n', done.usage);

// streamed, piece by piece
const stream = streamText({ model, prompt: 'JULIET:', maxOutputTokens: 32, temperature: 0.8, seed: 1 });
for await (const piece of stream.textStream) process.stdout.write(piece);
process.stdout.write('\n');

// errors are the SDK's APICallError, with the server's message
try {
  await generateText({ model: provider.completionModel('no-such-model'), prompt: 'x', maxRetries: 0 });
} catch (err) {
  if (APICallError.isInstance(err)) console.log(`${err.statusCode}: ${err.message}`);
  else throw err;
}
