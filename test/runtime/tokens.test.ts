/**
 * Tokenizer loading, dataset formats, chunked encoding (must give the ids of whole-text
 * encoding) and window sampling.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDataset, wikitextRows } from '../../src/tokens/dataset.js';
import { encodeText, loadTokenizer } from '../../src/tokens/tokenizer.js';
import { calibrationWindows, evaluationWindows } from '../../src/tokens/windows.js';
import { hasSharedData, sharedPath } from '../helpers/shared-data.js';

const work = mkdtempSync(path.join(tmpdir(), 'rfid-tokens-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('datasets', () => {
  it('WikiText rows: whitespace-only lines become "", others keep their newline, joined with blank lines', async () => {
    expect(wikitextRows(' \n = Title = \n \n Text line .\n')).toEqual(['', ' = Title = \n', '', ' Text line .\n']);
    const file = path.join(work, 'tiny.raw');
    writeFileSync(file, ' \n = Title = \n \n Text line .\n');
    const ds = await loadDataset(file);
    expect(ds.format).toBe('wikitext');
    expect(ds.text).toBe('\n\n = Title = \n\n\n\n\n Text line .\n');
    expect(ds.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('JSONL: the chosen field of each row, joined with blank lines; bad rows are named with the fix', async () => {
    const file = path.join(work, 'rows.jsonl');
    writeFileSync(file, '{"text":"first row","body":"b1"}\n\n{"text":"second","body":"b2"}\n');
    expect((await loadDataset(file)).text).toBe('first row\n\nsecond');
    expect((await loadDataset(file, { textField: 'body' })).text).toBe('b1\n\nb2');
    writeFileSync(file, '{"text":"ok"}\n{"title":"no text"}\n');
    await expect(loadDataset(file)).rejects.toThrow(/line 2 has no string field "text".*`textField`/);
    writeFileSync(file, '{"text":"ok"}\nnot json\n');
    await expect(loadDataset(file)).rejects.toThrow(/line 2 is not valid JSON/);
    await expect(loadDataset(path.join(work, 'missing.txt'))).rejects.toThrow(/cannot read dataset .*ENOENT/);
  });

  it('binary data (a NUL byte) and invalid UTF-8 are refused, not tokenized as U+FFFD', async () => {
    const bin = path.join(work, 'weights.txt');
    writeFileSync(bin, Buffer.from([0x68, 0x69, 0x00, 0x01, 0x02]));
    await expect(loadDataset(bin)).rejects.toThrow(/is binary \(a NUL byte at offset 2\)/);
    const latin1 = path.join(work, 'latin1.txt');
    writeFileSync(latin1, Buffer.from('caf\xe9 au lait', 'latin1'));
    await expect(loadDataset(latin1)).rejects.toThrow(/not valid UTF-8 text \(first invalid byte near offset [34]\)/);
    const jsonl = path.join(work, 'bad.jsonl');
    writeFileSync(jsonl, Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]));
    await expect(loadDataset(jsonl)).rejects.toThrow(/not valid UTF-8/);
    const utf8 = path.join(work, 'utf8.txt');
    writeFileSync(utf8, 'café — naïve ✓');
    expect((await loadDataset(utf8)).text).toBe('café — naïve ✓');
  });

  it('plain text is taken as is', async () => {
    const file = path.join(work, 'plain.txt');
    writeFileSync(file, 'a\n\nb\n');
    const ds = await loadDataset(file);
    expect([ds.format, ds.text]).toEqual(['text', 'a\n\nb\n']);
  });
});

describe('windows', () => {
  const ids = Int32Array.from({ length: 1000 }, (_, i) => i);

  it('calibration windows: seeded, reproducible, inside the data, and a different seed gives different offsets', () => {
    const a = calibrationWindows(ids, 10, 100, 7);
    const b = calibrationWindows(ids, 10, 100, 7);
    const c = calibrationWindows(ids, 10, 100, 8);
    expect(a.map((w) => w[0])).toEqual(b.map((w) => w[0]));
    expect(a.map((w) => w[0])).not.toEqual(c.map((w) => w[0]));
    for (const w of a) {
      expect(w.length).toBe(100);
      expect(w[99] - w[0]).toBe(99); // contiguous
      expect(w[99]).toBeLessThan(1000);
    }
    expect(() => calibrationWindows(ids.subarray(0, 50), 4, 100, 0)).toThrow(/50 tokens, fewer than one window of 100/);
  });

  it('calibration windows: a dataset shorter than samples × seq-len is refused, not covered by repeating windows', () => {
    expect(() => calibrationWindows(ids, 16, 100, 7)).toThrow(/1000 tokens, fewer than the 16 windows of 100 tokens need \(1600\).*at most 10 windows/);
    expect(calibrationWindows(ids, 10, 100, 7)).toHaveLength(10);
  });

  it('evaluation windows: consecutive, non-overlapping, tail dropped, capped by maxWindows', () => {
    const w = evaluationWindows(ids, 300);
    expect(w.map((x) => [x[0], x.length])).toEqual([[0, 300], [300, 300], [600, 300]]);
    expect(evaluationWindows(ids, 300, 2).length).toBe(2);
    expect(() => evaluationWindows(ids, 1)).toThrow(/at least 2/);
  });
});

describe('tokenizer', () => {
  it('a model directory without tokenizer.json is a clear error naming the `tokenizer` option', async () => {
    const dir = path.join(work, 'model-without-tokenizer');
    mkdirSync(dir, { recursive: true });
    await expect(loadTokenizer(dir)).rejects.toThrow(/no tokenizer\.json in .*`tokenizer`/);
    writeFileSync(path.join(dir, 'tokenizer.json'), '{"not":"a tokenizer"}');
    await expect(loadTokenizer(dir)).rejects.toThrow(/no "model" section/);
  });

  describe.skipIf(!hasSharedData)('GPT-2 (real tokenizer.json)', () => {
    it('matches the golden GPT-2 encodings', async () => {
      const tok = await loadTokenizer(sharedPath('gpt2-tokenizer', 'tokenizer.json'));
      expect(tok.chunkSafe).toBe(true);
      const golden = JSON.parse(readFileSync(sharedPath('gpt2-tokenizer', 'golden-gpt2-tokenization.json'), 'utf8')) as { cases: { text: string; ids: number[] }[] };
      for (const c of golden.cases) expect(Array.from(encodeText(tok, c.text))).toEqual(c.ids);
    });

    it('chunked encoding of a long text gives exactly the ids of encoding it whole', async () => {
      const tok = await loadTokenizer(sharedPath('gpt2-tokenizer', 'tokenizer.json'));
      // 600k characters: three pieces of ≤256k (the full-file golden counts are asserted on WikiText in perplexity-golden)
      const text = readFileSync(sharedPath('tinyshakespeare', 'input.txt'), 'utf8').slice(0, 600_000);
      const chunked = encodeText(tok, text);
      const whole: number[] = tok.tokenizer.encode(text, { add_special_tokens: false }).ids;
      expect(whole.length).toBe(chunked.length);
      // first differing position (-1: none); cheaper than a deep equality over ~180k entries
      expect(whole.findIndex((id, i) => id !== chunked[i])).toBe(-1);
    });
  });
});
