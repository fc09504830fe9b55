/**
 * The Python with torch + transformers that the Hugging Face compatibility tests run
 * (scripts/hf_reference.py): $RFID_MOE_PYTHON, else `<repo>/.venv/bin/python` (which .ci/run
 * creates). Without it those tests are skipped with a loud message — except in CI (CI=true), where
 * a missing transformers is a failure: the point of the tests is that outputs load in the real
 * client, and a CI that silently skipped them would prove nothing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import { repoRoot } from './shared-data.js';

export const pythonPath: string = process.env.RFID_MOE_PYTHON ?? path.join(repoRoot, '.venv', 'bin', 'python');

const inCi = process.env.CI === 'true' || process.env.CI === '1';

/** Why these Python modules cannot be used, or undefined when they can (found without importing them). */
function unavailableReason(modules: string[]): string | undefined {
  if (!existsSync(pythonPath)) return `no Python at ${pythonPath}`;
  const found = modules.map((m) => `u.find_spec('${m}')`).join(' and ');
  try {
    execFileSync(pythonPath, ['-c', `import importlib.util as u, sys; sys.exit(0 if ${found} else 3)`], { stdio: 'ignore', timeout: 30_000 });
    return undefined;
  } catch {
    return `${pythonPath} has no ${modules.join('/')}`;
  }
}

const reason = unavailableReason(['torch', 'transformers']);
export const hasTransformers = reason === undefined;
export const transformersSkipReason = `${reason}: create the venv with \`python3 -m venv .venv && .venv/bin/pip install torch transformers numpy\` (or set RFID_MOE_PYTHON)`;

if (!hasTransformers) {
  const banner = inCi ? 'FAILING (CI=true)' : 'SKIPPED';
  console.warn(`\n*** Hugging Face transformers tests ${banner}: ${transformersSkipReason} ***\n`);
}

/**
 * `describe` for suites that need transformers: skipped (loudly) without it, or, in CI, replaced
 * by one failing test that says what is missing.
 */
export function describeWithTransformers(name: string, body: () => void): void {
  if (hasTransformers) describe(name, body);
  else if (inCi) describe(name, () => it('needs Python with torch + transformers (CI=true: this is a failure, not a skip)', () => { throw new Error(transformersSkipReason); }));
  else describe.skip(`${name} [skipped: ${transformersSkipReason}]`, body);
}

const lmEvalReason = reason ?? unavailableReason(['lm_eval', 'datasets', 'accelerate']);
/** lm-evaluation-harness (scripts/lm_eval_check.py), installed by .ci/run beside transformers */
export const lmEvalSkipReason = `${lmEvalReason}: install lm-evaluation-harness as .ci/run does (or set RFID_MOE_PYTHON)`;

/** `describe` for suites that need lm-evaluation-harness: as describeWithTransformers. */
export function describeWithLmEval(name: string, body: () => void): void {
  if (lmEvalReason === undefined) describe(name, body);
  else if (inCi) describe(name, () => it('needs Python with lm-evaluation-harness (CI=true: this is a failure, not a skip)', () => { throw new Error(lmEvalSkipReason); }));
  else {
    console.warn(`\n*** lm-evaluation-harness tests SKIPPED: ${lmEvalSkipReason} ***\n`);
    describe.skip(`${name} [skipped: ${lmEvalSkipReason}]`, body);
  }
}

export interface HfJobResult {
  ok: boolean;
  type?: string;
  error?: string;
  logits?: number[][];
  modelClass?: string;
  windows?: number;
  tokens?: number;
  meanNll?: number;
  perplexity?: number;
  loading?: { missing_keys: string[]; unexpected_keys: string[]; mismatched_keys: string[] };
  /** generate: the new token ids, and the stop ids transformers used */
  generated?: number[];
  eosTokenId?: number | number[] | null;
  /** warp: softmax of each row after transformers' sampling warpers */
  probs?: number[][];
}

export type HfJob =
  | { op: 'logits'; model: string; ids: number[][]; mask: number[][] }
  | { op: 'ppl'; model: string; ids: string; seqLen: number; maxWindows?: number }
  | { op: 'load'; model: string }
  | {
      op: 'generate';
      model: string;
      ids: number[];
      maxNewTokens: number;
      /** transformers' repetition_penalty and sequence_bias, and OpenAI's penalties (scripts/hf_reference.py) */
      repetitionPenalty?: number;
      logitBias?: Array<[number, number]>;
      frequencyPenalty?: number;
      presencePenalty?: number;
      allowedTokenIds?: number[];
    }
  | { op: 'warp'; logits: number[][]; temperature: number; topK: number; topP: number; minP: number | null };

/** Runs jobs through scripts/hf_reference.py in ONE Python process (imports cost seconds). */
export async function runHfJobs(jobs: HfJob[]): Promise<{ transformers: string; torch: string; results: HfJobResult[] }> {
  const child = spawn(pythonPath, [path.join(repoRoot, 'scripts', 'hf_reference.py')], {
    env: {
      ...process.env,
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      HF_HUB_DISABLE_PROGRESS_BARS: '1',
      TRANSFORMERS_VERBOSITY: 'error',
      TOKENIZERS_PARALLELISM: 'false',
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '2',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(JSON.stringify({ jobs }));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`scripts/hf_reference.py exited with ${code}: ${stderr.slice(-2000)}`);
  return JSON.parse(stdout) as { transformers: string; torch: string; results: HfJobResult[] };
}

/** max |a − b| over max |b| of two logits matrices given row-major. */
export function relativeError(actual: ArrayLike<number>, expected: number[][]): number {
  const vocab = expected[0].length;
  let maxDiff = 0;
  let maxRef = 0;
  expected.forEach((row, r) =>
    row.forEach((v, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(actual[r * vocab + j] - v));
      maxRef = Math.max(maxRef, Math.abs(v));
    }),
  );
  return maxDiff / maxRef;
}
