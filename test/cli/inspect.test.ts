/**
 * `rfid-moe inspect` run as a user runs it (node + tsx on src/cli/main.ts, in a child process):
 * `--json` on a generated checkpoint of every family reports the counts computed independently from
 * config.json; a single .safetensors file lists its tensors; broken input exits 2 with one line.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_FAMILIES, makeTinyCheckpoint } from '../helpers/fixtures.js';
import { repoRoot } from '../helpers/shared-data.js';
import { independentCounts } from '../checkpoint/expected-counts.js';
import { makeScratch } from '../checkpoint/tmp-dirs.js';

const run = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function inspect(...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'inspect', ...args], { cwd: repoRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let scratch: Awaited<ReturnType<typeof makeScratch>>;
beforeAll(async () => {
  scratch = await makeScratch('cli');
});
afterAll(async () => {
  await scratch.cleanup();
});

describe('inspect <dir> --json', () => {
  it('reports the right counts for every family (per-expert, fused and sharded forms)', async () => {
    const variants = FIXTURE_FAMILIES.map((family, i) => ({
      family,
      // rotate the storage form over the families so every form goes through the CLI
      opts: [{}, { fusedExperts: true }, { maxShardBytes: 16384 }][i % 3],
    }));
    const results = await Promise.all(
      variants.map(async ({ family, opts }) => {
        const fixture = await makeTinyCheckpoint(scratch.sub(`json-${family}`), family, { seed: 5, ...opts });
        return { family, fixture, result: await inspect(fixture.dir, '--json') };
      }),
    );
    for (const { family, fixture, result } of results) {
      expect(result.code, result.stdout + result.stderr).toBe(0);
      const out = JSON.parse(result.stdout) as Record<string, unknown> & { parameters: Record<string, number>; layers: Array<{ experts: number }> };
      const truth = independentCounts(fixture.config);
      expect(out).toMatchObject({
        ok: true,
        type: 'checkpoint',
        family,
        modelType: family,
        numLayers: fixture.config.num_hidden_layers,
        moeLayers: truth.moeLayers,
        denseLayers: truth.denseLayers,
        numExperts: truth.numExperts,
        topK: truth.topK,
        expertShapes: { gate: [truth.expertWidth, 32], up: [truth.expertWidth, 32], down: [32, truth.expertWidth] },
        dtypes: { F32: fixture.tensors.length },
        validation: { ok: true, tensorsChecked: fixture.tensors.length, unusedTensors: [] },
      });
      expect(out.layers.map((l) => l.experts)).toEqual(Array.from({ length: fixture.config.num_hidden_layers as number }, (_, l) => (truth.moeLayers.includes(l) ? truth.numExperts : 0)));
      expect(out.parameters).toMatchObject({ total: truth.total, experts: truth.experts, routedGateUp: truth.routedGateUp, sharedExperts: truth.sharedExperts, routers: truth.routers });
      const sharded = (out.shardCount as number) > 1;
      expect(sharded, family).toBe('maxShardBytes' in (variants.find((v) => v.family === family)!.opts));
    }
  });

  it('prints a human summary by default', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub('human'), 'qwen2_moe');
    const result = await inspect(dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/family\s+Qwen2-MoE \(model_type qwen2_moe\)/);
    expect(result.stdout).toMatch(/layers\s+3: MoE 0, 2; dense 1/);
    expect(result.stdout).toMatch(/gate \+ up\s+16,384/);
    expect(result.stdout).toContain('validation: OK, 91 tensors match config.json');
  });
});

describe('inspect <file.safetensors>', () => {
  it('lists tensors with dtype, shape, byte range, and the metadata', async () => {
    const { dir, tensors } = await makeTinyCheckpoint(scratch.sub('file'), 'olmoe', { dtype: 'BF16' });
    const result = await inspect(path.join(dir, 'model.safetensors'), '--json');
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as { type: string; metadata: unknown; tensorCount: number; tensors: Array<{ name: string; dtype: string; shape: number[]; dataOffsets: [number, number] }> };
    expect(out.type).toBe('safetensors-file');
    expect(out.metadata).toEqual({ format: 'pt' });
    expect(out.tensorCount).toBe(tensors.length);
    const byName = new Map(out.tensors.map((t) => [t.name, t]));
    for (const t of tensors) {
      const got = byName.get(t.name)!;
      expect(got.dtype).toBe('BF16');
      expect(got.shape).toEqual(t.shape);
      expect(got.dataOffsets[1] - got.dataOffsets[0]).toBe(2 * t.shape.reduce((a, b) => a * b, 1));
    }
    const human = await inspect(path.join(dir, 'model.safetensors'));
    expect(human.stdout).toMatch(/model\.layers\.1\.self_attn\.q_norm\.weight\s+BF16\s+\[32\]\s+\[\d+, \d+\)/);
    expect(human.stdout).toContain('metadata: format=pt');
  });
});

describe('broken input exits 2 with one clear line', () => {
  it('unknown model_type, missing path, damaged file, missing config.json', async () => {
    const { dir } = await makeTinyCheckpoint(scratch.sub('broken'), 'deepseek');
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'gpt2' }));
    const garbage = scratch.sub('garbage.safetensors');
    await writeFile(garbage, new Uint8Array([1, 2, 3]));

    const [unknownJson, unknownPlain, missing, damaged] = await Promise.all([
      inspect(dir, '--json'),
      inspect(dir),
      inspect(scratch.sub('nope')),
      inspect(garbage, '--json'),
    ]);
    expect(unknownJson.code).toBe(2);
    const err = JSON.parse(unknownJson.stdout) as { ok: boolean; error: { kind: string; variant: string; message: string } };
    expect(err.ok).toBe(false);
    expect(err.error).toMatchObject({ kind: 'CheckpointError', variant: 'UnknownModelType' });
    expect(err.error.message).toContain("'gpt2'");

    for (const r of [unknownPlain, missing]) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^rfid-moe: /);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(missing.stderr).toContain('does not exist');

    expect(damaged.code).toBe(2);
    expect((JSON.parse(damaged.stdout) as { error: object }).error).toMatchObject({ kind: 'SafetensorsError', variant: 'HeaderTooSmall' });

    await rm(path.join(dir, 'config.json'));
    const noConfig = await inspect(dir, '--json');
    expect(noConfig.code).toBe(2);
    expect((JSON.parse(noConfig.stdout) as { error: object }).error).toMatchObject({ kind: 'CheckpointError', variant: 'MissingConfig' });
  });
});
