/**
 * The package as a consumer compiles against it (one consumer project, see ./consumer.ts):
 * - the public declarations type-check with `skipLibCheck: false` (strict; NodeNext and bundler
 *   resolution), without the optional tfjs peers installed;
 * - every ```ts block of README.md compiles against them.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeConsumer, type Consumer } from './consumer.js';
import { repoRoot } from '../helpers/shared-data.js';

/** One tsc run over the consumer takes 30–60 s on a busy 2-core machine. */
const TSC_TIMEOUT = 300_000;

/** The ```ts blocks of a Markdown text. */
function typescriptBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

describe('a consumer project compiles against the package', () => {
  let consumer: Consumer;
  beforeAll(() => {
    consumer = makeConsumer();
    writeFileSync(
      path.join(consumer.dir, 'uses-everything.ts'),
      `import * as rfid from 'rfid-moe';
import { compress, loadCompressed, openCheckpoint, createEngine, RfidMoeError, CheckpointError, type CompressionReport, type CompressProgress } from 'rfid-moe';

// every namespace and export is referenced, so each declaration file is loaded and checked
export const everything: typeof rfid = rfid;
export async function run(): Promise<CompressionReport> {
  const onProgress = (e: CompressProgress): void => void e;
  try {
    const ckpt = await openCheckpoint('model');
    await ckpt.close();
  } catch (err) {
    if (err instanceof CheckpointError) console.log(err.variant);
    if (err instanceof RfidMoeError) console.log(err.kind);
  }
  const { engine } = await createEngine('auto');
  engine.dispose();
  await loadCompressed('out');
  return compress('model', { retain: 0.6 }, { out: 'out', onProgress });
}
`,
    );
  }, TSC_TIMEOUT);
  afterAll(() => rmSync(consumer.dir, { recursive: true, force: true }));

  it('the public .d.ts with NodeNext resolution, skipLibCheck: false', () => {
    const r = consumer.typecheck(['uses-everything.ts']);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  }, TSC_TIMEOUT);

  it('the public .d.ts with bundler resolution, skipLibCheck: false', () => {
    const r = consumer.typecheck(['uses-everything.ts'], { module: 'ESNext', moduleResolution: 'Bundler' });
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  }, TSC_TIMEOUT);

  it("README.md's library snippets", () => {
    const blocks = typescriptBlocks(readFileSync(path.join(repoRoot, 'README.md'), 'utf8'));
    expect(blocks.length).toBeGreaterThan(0);
    const files = blocks.map((code, i) => {
      const file = `readme-snippet-${i + 1}.ts`;
      // each block is a module of its own (top-level await, its own imports)
      writeFileSync(path.join(consumer.dir, file), `${code}\nexport {};\n`);
      return file;
    });
    const r = consumer.typecheck(files);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  }, TSC_TIMEOUT);
});
