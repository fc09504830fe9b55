/**
 * One server process hosting both shipped models under a memory budget that holds only one of
 * them: requests to each are answered, the policy evicts the other model to make room (real
 * loads, not a fake loader), and a model evicted and loaded again answers exactly as before.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/engine/index.js';
import { createServer, type RfidMoeServer } from '../../src/serve/server.js';
import { repoRoot } from '../helpers/shared-data.js';
import { getJson, postJson, TINY_DIR } from './helpers.js';

const QWEN3_DIR = path.join(repoRoot, 'examples', 'models', 'qwen3-moe-tiny-shakespeare');
const MODELS = [`mixtral=${TINY_DIR}`, `qwen3=${QWEN3_DIR}`];

const { engine } = await createEngine('auto', { threads: 1 });
let server: RfidMoeServer;
let url: string;
let budget: number;
const events: string[] = [];

beforeAll(async () => {
  // the models' resident sizes, as the server plans them
  const probe = await createServer({ models: MODELS, engine, processMetrics: false });
  const sizes = [...probe.models.values()].map((m) => m.estimatedBytes);
  await probe.close();
  budget = Math.max(...sizes) + Math.floor(Math.min(...sizes) / 2);
  server = await createServer({
    models: MODELS,
    engine,
    policy: 'lru',
    memoryBudget: budget,
    processMetrics: false,
    onLoad: (e) => events.push(`load ${e.id}`),
    onUnload: (e) => events.push(`${e.reason} ${e.id}`),
  });
  url = await server.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await server?.close();
  engine.dispose();
});

const complete = async (model: string) => {
  const r = await postJson(`${url}/v1/completions`, { model, prompt: 'ROMEO:', max_tokens: 8, temperature: 0 });
  expect(r.status).toBe(200);
  expect(r.json.usage.completion_tokens).toBe(8);
  return r.json.choices[0].text as string;
};

describe('two models in one server, a budget for one', () => {
  it('lists both models', async () => {
    const r = await getJson(`${url}/v1/models`);
    expect(r.data.map((m: { id: string }) => m.id).sort()).toEqual(['mixtral', 'qwen3']);
    const sizes = [...server.models.values()].map((m) => m.estimatedBytes);
    expect(budget).toBeLessThan(sizes[0] + sizes[1]);
  });

  it('answers each, evicting the other to make room, and a reloaded model answers as before', async () => {
    const first = await complete('mixtral');
    const other = await complete('qwen3');
    const again = await complete('mixtral');
    expect(again).toBe(first);
    expect(other.length).toBeGreaterThan(0);
    expect(events).toEqual(['load mixtral', 'evicted mixtral', 'load qwen3', 'evicted qwen3', 'load mixtral']);
    expect(server.residency.usedBytes()).toBeLessThanOrEqual(budget);
  });
});
