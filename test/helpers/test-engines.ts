/**
 * A test file's engines (the pure-TS engine, and the native one where it builds) and its temporary
 * directory, made before the file's tests and disposed after them; with `useTinyCheckpoint`, also
 * one fixture checkpoint opened there. The runtime's per-family test files each wrote this setup out.
 */
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint, FamilyName } from '../../src/checkpoint/types.js';
import { loadNativeEngine } from '../../src/engine/native.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { tempDir } from '../compress/helpers.js';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from './fixtures.js';

export interface TestEngines {
  /** the engines to check each path on: filled when the file's tests start, so iterate it inside a test */
  readonly engines: Array<{ name: string; engine: Engine }>;
  /** the file's temporary directory, removed after its tests */
  dir(): string;
}

export function useTestEngines(label: string): TestEngines {
  const engines: Array<{ name: string; engine: Engine }> = [];
  let root: Awaited<ReturnType<typeof tempDir>> | undefined;
  beforeAll(async () => {
    root = await tempDir(label);
    engines.push({ name: 'ts', engine: createTsEngine({ threads: 1 }) });
    const native = loadNativeEngine({ threads: 2 });
    if (native.ok) engines.push({ name: 'native', engine: native.engine });
  });
  afterAll(async () => {
    for (const { engine } of engines) engine.dispose();
    await root?.cleanup();
  });
  return {
    engines,
    dir: () => {
      if (!root) throw new Error('the test directory exists only while the file’s tests run');
      return root.dir;
    },
  };
}

/** The engines and directory of `useTestEngines`, and a tiny `family` checkpoint made there and opened for the file's tests. */
export function useTinyCheckpoint(label: string, family: FamilyName, options: TinyCheckpointOptions): TestEngines & { checkpoint(): Checkpoint } {
  const setup = useTestEngines(label);
  let ckpt: Checkpoint | undefined;
  beforeAll(async () => {
    const dir = path.join(setup.dir(), family);
    await makeTinyCheckpoint(dir, family, options);
    ckpt = await openCheckpoint(dir);
  });
  afterAll(async () => {
    await ckpt?.close();
  });
  return {
    ...setup,
    checkpoint: () => {
      if (!ckpt) throw new Error('the fixture checkpoint is open only while the file’s tests run');
      return ckpt;
    },
  };
}
