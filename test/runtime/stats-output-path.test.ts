/**
 * Where `rfid-moe calibrate` may write (--out statistics file, --grams directory): never over a
 * file that is not a statistics file, never into a model directory (also through a symlink).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkGramsOutDir, checkStatsOutPath } from '../../src/routing-stats/output-path.js';
import { ROUTING_STATS_FORMAT } from '../../src/routing-stats/schema.js';

const work = mkdtempSync(path.join(tmpdir(), 'rfid-stats-out-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const model = path.join(work, 'model');
mkdirSync(model);
writeFileSync(path.join(model, 'config.json'), '{}');
writeFileSync(path.join(model, 'model.safetensors'), 'x');
const other = path.join(work, 'other-model');
mkdirSync(other);
writeFileSync(path.join(other, 'model.safetensors.index.json'), '{}');

describe('calibrate --out', () => {
  it('a new file, or a previous statistics file, is fine', async () => {
    await expect(checkStatsOutPath(path.join(work, 'new.json'), model)).resolves.toBeUndefined();
    const previous = path.join(work, 'previous.json');
    writeFileSync(previous, JSON.stringify({ format: ROUTING_STATS_FORMAT, version: 1 }));
    await expect(checkStatsOutPath(previous, model)).resolves.toBeUndefined();
  });

  it('anything else is refused', async () => {
    await expect(checkStatsOutPath(path.join(model, 'model.safetensors'), model)).rejects.toThrow(/names a model file/);
    await expect(checkStatsOutPath(path.join(work, 'config.json'), model)).rejects.toThrow(/names a model file/);
    await expect(checkStatsOutPath(path.join(model, 'stats.json'), model)).rejects.toThrow(/inside the model directory/);
    await expect(checkStatsOutPath(path.join(model, 'sub', 'stats.json'), model)).rejects.toThrow(/inside the model directory/);
    await expect(checkStatsOutPath(path.join(other, 'stats.json'), model)).rejects.toThrow(/inside a model directory/);
    const link = path.join(work, 'link-to-model');
    symlinkSync(model, link);
    await expect(checkStatsOutPath(path.join(link, 'stats.json'), model)).rejects.toThrow(/inside the model directory/);
    const notes = path.join(work, 'notes.json');
    writeFileSync(notes, '{"mine": true}');
    await expect(checkStatsOutPath(notes, model)).rejects.toThrow(/not an rfid-moe statistics file; refusing to overwrite it/);
    await expect(checkStatsOutPath(work, model)).rejects.toThrow(/exists and is not a file/);
  });
});

describe('calibrate --grams', () => {
  it('a new or previous Gram directory is fine; a model directory or a directory of other files is not', async () => {
    await expect(checkGramsOutDir(path.join(work, 'grams'), model)).resolves.toBeUndefined();
    const previous = path.join(work, 'grams-previous');
    mkdirSync(previous);
    writeFileSync(path.join(previous, 'grams.json'), '{}');
    writeFileSync(path.join(previous, 'layer0-expert0.gram.safetensors'), 'x');
    await expect(checkGramsOutDir(previous, model)).resolves.toBeUndefined();
    await expect(checkGramsOutDir(path.join(model, 'grams'), model)).rejects.toThrow(/inside the model directory/);
    await expect(checkGramsOutDir(other, model)).rejects.toThrow(/inside a model directory/);
    await expect(checkGramsOutDir(path.join(other, 'grams'), model)).rejects.toThrow(/inside a model directory/);
    const mixed = path.join(work, 'mixed');
    mkdirSync(mixed);
    writeFileSync(path.join(mixed, 'thesis.tex'), 'x');
    await expect(checkGramsOutDir(mixed, model)).rejects.toThrow(/not empty and holds no Gram matrices/);
  });
});
