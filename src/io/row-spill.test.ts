import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RowSpill } from './row-spill.js';

let parent: string;
beforeAll(async () => {
  parent = await mkdtemp(path.join(os.tmpdir(), 'rfid-row-spill-test-'));
});
afterAll(async () => {
  await rm(parent, { recursive: true, force: true });
});

describe('RowSpill', () => {
  it('reads back any prefix of what it stored, byte for byte (NaN payloads, −0, subnormals included), and close removes its directory', async () => {
    const spill = RowSpill.create(parent);
    const a = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1e3);
    const bits = new Uint32Array([0x7fc00001, 0x80000000, 0x00000001, 0x3f800000]);
    const b = new Float32Array(bits.buffer);
    const view = a.subarray(100, 300); // an offset view writes only its own bytes
    const ha = spill.put(a);
    const hb = spill.put(b);
    const hv = spill.put(view);
    expect(Array.from(spill.read(ha))).toEqual(Array.from(a));
    expect(Array.from(spill.read(ha, 10))).toEqual(Array.from(a.subarray(0, 10)));
    expect(Array.from(new Uint32Array(spill.read(hb).buffer))).toEqual(Array.from(bits));
    expect(Array.from(spill.read(hv))).toEqual(Array.from(view));
    expect(() => spill.read(hb, 5)).toThrow(/5 values asked of 4 stored/);
    expect((await readdir(parent)).length).toBe(1);
    spill.close();
    spill.close();
    expect(await readdir(parent)).toEqual([]);
    expect(() => spill.read(ha)).toThrow(/after close/);
    expect(existsSync(parent)).toBe(true);
  });

  it('a directory it cannot write in is refused with what to do, not a bare errno', () => {
    expect(() => RowSpill.create(path.join(parent, 'does-not-exist'))).toThrow(/could not park basis rows in a temporary file under .*does-not-exist .*ENOENT.*TMPDIR/);
  });
});
