/**
 * The examples run as a user runs them (node --import tsx examples/…), on a tiny random Mixtral
 * with the demo tokenizer and a stand-in data folder: they exit 0, print what they promise, and
 * compare-methods writes parseable JSON, a Markdown table with a row per method, and a
 * well-formed SVG with one line per method.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METHOD_LABELS, METHODS } from '../../examples/lib/methods.js';
import { TABLE_BEGIN, TABLE_END, type SweepResults } from '../../examples/lib/sweep-results.js';
import { repoRoot } from '../helpers/shared-data.js';
import { DEMO_TOKENIZER, makeExampleFixture } from './fixture.js';

function runExample(script: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'examples', script), ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Tags balance and every element is properly opened/closed (a small XML well-formedness check). */
function assertWellFormedXml(xml: string): void {
  const body = xml.replace(/^<\?xml[^>]*\?>\s*/, '');
  const stack: string[] = [];
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|>/g)) {
    if (m[0] === '<' || m[0] === '>') throw new Error(`stray "${m[0]}" at offset ${m.index}`);
    const [, closing, name, , selfClosing] = m;
    if (selfClosing) continue;
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at offset ${m.index}`);
    } else stack.push(name);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
}

describe.skipIf(!existsSync(DEMO_TOKENIZER))('examples on a tiny fixture', () => {
  let work: string;
  let fixture: { model: string; data: string };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'rfid-examples-'));
    fixture = await makeExampleFixture(work);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('compress-from-script compresses with progress events, reloads the result and compares it with the original', () => {
    const out = path.join(work, 'compressed');
    const r = runExample('compress-from-script.ts', [
      '--model', fixture.model, '--out', out, '--retain', '0.5',
      '--calibration', path.join(fixture.data, 'tinyshakespeare', 'input.txt'),
      '--text', path.join(fixture.data, 'ptb', 'ptb.test.txt'),
      '--samples', '8', '--seq-len', '16', '--max-windows', '2', '--engine', 'ts',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // progress events of every kind the handler prints, in order
    const calib = r.stdout.indexOf('calibration start');
    const layer = r.stdout.indexOf('layer 2/2 done');
    const summary = r.stdout.indexOf('removed:');
    expect(calib).toBeGreaterThanOrEqual(0);
    expect(layer).toBeGreaterThan(calib);
    expect(summary).toBeGreaterThan(layer);
    const ppl = /perplexity original (\d+\.\d+), compressed (\d+\.\d+)/.exec(r.stdout);
    expect(ppl).not.toBeNull();
    const kl = /mean KL\(original ‖ compressed\) (\S+) nats, top-1 agreement (\d+\.\d+)%/.exec(r.stdout);
    expect(Number(kl![1])).toBeGreaterThan(0);
    expect(Number(kl![2])).toBeLessThanOrEqual(100);
    // --out keeps the compressed model: a complete output with its report
    const report = JSON.parse(readFileSync(path.join(out, 'rfid-moe-report.json'), 'utf8')) as { params: { reductions: { gateUp: { kept: number } } } };
    expect(report.params.reductions.gateUp.kept).toBeGreaterThan(0.4);
    expect(report.params.reductions.gateUp.kept).toBeLessThan(0.55);
  }, 60_000);

  it('compare-methods writes the JSON, the tables between markers (keeping prose) and a well-formed SVG', () => {
    const out = path.join(work, 'results');
    const md = path.join(work, 'RESULTS.md');
    writeFileSync(md, `# My results\n\nProse before.\n\n${TABLE_BEGIN}\nold table\n${TABLE_END}\n\nProse after.\n`);
    const methods = ['uniform', 'grouped-uniform', 'rfid', 'rfid-whiten'] as const;
    const args = [
      '--model', fixture.model, '--data', fixture.data, '--out', out, '--results-md', md,
      '--retain', '0.6,0.3', '--methods', methods.join(','), '--seq-len', '16', '--max-windows', '2',
      '--calib-samples', '8', '--calib-seq-len', '16', '--engine', 'ts', '--kl-sets', 'shakespeare,wikitext2',
    ];
    const r = runExample('compare-methods.ts', args);
    expect(r.status, r.stderr).toBe(0);

    const json = JSON.parse(readFileSync(path.join(out, 'compare-methods.json'), 'utf8')) as SweepResults;
    expect(json.runs).toHaveLength(methods.length * 2);
    expect(json.evalSets.map((s) => s.key)).toEqual(['wikitext2', 'ptb', 'shakespeare', 'wikivalid']);
    for (const run of json.runs) {
      // the budget is honoured to within the coarse rank unit of this tiny model
      expect(Math.abs(run.keptGateUp - run.retain)).toBeLessThan(0.1);
      expect(run.error.outputRel).toBeGreaterThan(0);
      expect(run.error.weightRel).toBeLessThan(1);
      for (const s of json.evalSets) expect(run.eval[s.key].perplexity).toBeGreaterThan(1);
      expect(run.eval.shakespeare.meanKl).toBeGreaterThan(0);
      expect(run.eval.wikitext2.meanKl).toBeGreaterThan(0);
      expect(run.eval.ptb.meanKl).toBeUndefined();
    }
    // more parameters kept → closer weights, for every method
    for (const m of methods) {
      const [hi, lo] = [0.6, 0.3].map((g) => json.runs.find((x) => x.method === m && x.retain === g)!);
      expect(hi.error.weightRel).toBeLessThan(lo.error.weightRel);
    }
    // whitening minimises the output-space error, the plain method the weight-space error
    for (const g of [0.6, 0.3]) {
      const plain = json.runs.find((x) => x.method === 'rfid' && x.retain === g)!;
      const white = json.runs.find((x) => x.method === 'rfid-whiten' && x.retain === g)!;
      expect(white.error.outputRel).toBeLessThan(plain.error.outputRel);
      expect(white.error.weightRel).toBeGreaterThan(plain.error.weightRel);
    }

    const doc = readFileSync(md, 'utf8');
    expect(doc).toMatch(/^# My results\n\nProse before\./);
    expect(doc).toMatch(/Prose after\.\n$/);
    expect(doc).not.toContain('old table');
    const rows = doc.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| method'));
    for (const m of methods) expect(rows.filter((l) => l.startsWith(`| ${METHOD_LABELS[m]} |`)).length).toBeGreaterThanOrEqual(4);
    for (const m of METHODS.filter((x) => !(methods as readonly string[]).includes(x))) expect(doc).not.toContain(METHOD_LABELS[m]);

    const svg = readFileSync(path.join(out, 'perplexity-vs-retained.svg'), 'utf8');
    assertWellFormedXml(svg);
    expect(svg).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    // one polyline per method and panel, two points each
    expect(svg.match(/<polyline /g)).toHaveLength(methods.length * json.evalSets.length);
    for (const m of methods) expect(svg).toContain(METHOD_LABELS[m]);
    // the KL chart: one panel per set compared with the original (here shakespeare and wikitext2)
    const klSvg = readFileSync(path.join(out, 'kl-vs-retained.svg'), 'utf8');
    assertWellFormedXml(klSvg);
    expect(klSvg.match(/<polyline /g)).toHaveLength(methods.length * 2);
    expect(doc).toMatch(/\]\([^)]*kl-vs-retained\.svg\)/);

    // a rerun with the same settings reuses every finished run
    const again = runExample('compare-methods.ts', args);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain(`reusing ${methods.length * 2} finished run(s)`);
  }, 60_000);

  it('compare-methods refuses an unknown method with the list of valid ones', () => {
    const r = runExample('compare-methods.ts', ['--model', fixture.model, '--data', fixture.data, '--methods', 'rfid,magic']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown method(s) magic; choose from uniform, grouped-uniform');
  });

  it('every example takes its text as arguments and says how when it is missing', () => {
    const noText = runExample('compress-from-script.ts', ['--model', fixture.model, '--engine', 'ts']);
    expect(noText.status).toBe(2);
    expect(noText.stderr).toMatch(/no text given: pass --calibration and\/or --text\nusage: node --import tsx examples\/compress-from-script\.ts/);

    const noData = runExample('compare-methods.ts', ['--model', fixture.model, '--engine', 'ts']);
    expect(noData.status).toBe(2);
    expect(noData.stderr).toMatch(/no data folder: pass --data <dir>.*\nusage: node --import tsx examples\/compare-methods\.ts/);

    const noDataset = runExample('perplexity.ts', [fixture.model]);
    expect(noDataset.status).toBe(2);
    expect(noDataset.stderr).toMatch(/no text given: pass --dataset <file> or --data <dir>\nusage: node --import tsx examples\/perplexity\.ts/);
  });

  it('perplexity.ts evaluates the test sets of a --data folder', () => {
    const r = runExample('perplexity.ts', [fixture.model, '--data', fixture.data, '--seq-len', '16', '--max-windows', '2', '--engine', 'ts']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\| WikiText-2 test \| .* \| \d+\.\d{3} \| — \| 30 \|/m);
    expect(r.stdout).toMatch(/^\| PTB test \| .* \| \d+\.\d{3} \| — \| 30 \|/m);
  });
});
