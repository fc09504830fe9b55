/**
 * The official `openai` client against `rfid-moe serve` (start the server first):
 *
 *   npx rfid-moe serve examples/models/mixtral-tiny-shakespeare
 *   npx tsx examples/openai-client.ts            # or RFID_MOE_URL=http://host:port/v1
 */
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.env.RFID_MOE_URL ?? 'http://127.0.0.1:8000/v1', apiKey: 'not-needed' });
const model = 'mixtral-tiny-shakespeare';

// one completion
const done = await client.completions.create({ model, prompt: 'ROMEO:\n', max_tokens: 32, temperature: 0 });
console.log(done.choices[0].text, '\n', done.usage);

// streamed, token by token
const stream = await client.completions.create({ model, prompt: 'JULIET:\n', max_tokens: 32, temperature: 0.8, seed: 1, stream: true });
for await (const chunk of stream) process.stdout.write(chunk.choices[0]?.text ?? '');
process.stdout.write('\n');

// errors are the client's typed exceptions
try {
  await client.completions.create({ model: 'no-such-model', prompt: 'x' });
} catch (err) {
  if (err instanceof OpenAI.NotFoundError) console.log(`404: ${err.message}`);
  else throw err;
}
