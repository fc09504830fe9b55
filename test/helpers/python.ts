/**
 * The Python with torch + transformers that the Hugging Face compatibility tests run
 * (scripts/hf_reference.py): $RFID_MOE_PYTHON, else `<repo>/.venv/bin/python` (which .ci/run
 * creates). Without it those tests are skipped with a loud message — except in CI (CI=true), where
 * a missing transformers is a failure: the point of the tests is that outputs load in the real
 * client, and a CI that silently skipped them would prove nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import { runPythonJson } from './python-json.js';
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
 * `describe` for suites that need these Python modules: skipped (loudly) without them, or, in CI,
 * replaced by one failing test that says what is missing.
 */
function describeNeeding(what: string, missing: string | undefined, skipReason: string, name: string, body: () => void): void {
  if (missing === undefined) describe(name, body);
  else if (inCi) describe(name, () => it(`needs Python with ${what} (CI=true: this is a failure, not a skip)`, () => { throw new Error(skipReason); }));
  else describe.skip(`${name} [skipped: ${skipReason}]`, body);
}

/** `describe` for suites that need transformers (describeNeeding). */
export function describeWithTransformers(name: string, body: () => void): void {
  describeNeeding('torch + transformers', reason, transformersSkipReason, name, body);
}

const lmEvalReason = reason ?? unavailableReason(['lm_eval', 'datasets', 'accelerate']);
/** lm-evaluation-harness (scripts/lm_eval_check.py), installed by .ci/run beside transformers */
export const lmEvalSkipReason = `${lmEvalReason}: install lm-evaluation-harness as .ci/run does (or set RFID_MOE_PYTHON)`;

/** `describe` for suites that need lm-evaluation-harness (describeNeeding). */
export function describeWithLmEval(name: string, body: () => void): void {
  if (lmEvalReason !== undefined && !inCi) console.warn(`\n*** lm-evaluation-harness tests SKIPPED: ${lmEvalSkipReason} ***\n`);
  describeNeeding('lm-evaluation-harness', lmEvalReason, lmEvalSkipReason, name, body);
}

const openaiReason = unavailableReason(['openai']);
/** the official `openai` Python client (scripts/openai_python_check.py), installed by .ci/run beside transformers */
export const openaiPythonSkipReason = `${openaiReason}: install it as .ci/run does (\`.venv/bin/pip install openai\`, or set RFID_MOE_PYTHON)`;

/** `describe` for suites that need the `openai` Python client (describeNeeding). */
export function describeWithPythonOpenai(name: string, body: () => void): void {
  if (openaiReason !== undefined && !inCi) console.warn(`\n*** openai Python client tests SKIPPED: ${openaiPythonSkipReason} ***\n`);
  describeNeeding('the openai client', openaiReason, openaiPythonSkipReason, name, body);
}

const pydanticReason = unavailableReason(['pydantic']);
/** Pydantic (scripts/pydantic_formats_check.py), installed with the `openai` client by .ci/run */
export const pydanticSkipReason = `${pydanticReason}: install it as .ci/run does (\`.venv/bin/pip install openai\`, which brings it, or set RFID_MOE_PYTHON)`;

/** `describe` for suites that need Pydantic (describeNeeding). */
export function describeWithPydantic(name: string, body: () => void): void {
  if (pydanticReason !== undefined && !inCi) console.warn(`\n*** Pydantic tests SKIPPED: ${pydanticSkipReason} ***\n`);
  describeNeeding('Pydantic', pydanticReason, pydanticSkipReason, name, body);
}

const hfHubReason = unavailableReason(['huggingface_hub']);
/** Hugging Face's InferenceClient (scripts/hf_inference_client_check.py), installed with transformers by .ci/run */
export const hfHubSkipReason = `${hfHubReason}: install it as .ci/run does (\`.venv/bin/pip install transformers\`, which brings huggingface_hub, or set RFID_MOE_PYTHON)`;

/** `describe` for suites that need huggingface_hub (describeNeeding). */
export function describeWithHfHub(name: string, body: () => void): void {
  if (hfHubReason !== undefined && !inCi) console.warn(`\n*** huggingface_hub client tests SKIPPED: ${hfHubSkipReason} ***\n`);
  describeNeeding('huggingface_hub', hfHubReason, hfHubSkipReason, name, body);
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
  /** quantize_fp8: the weights stored as block FP8 */
  quantized?: string[];
  /** wrap: every tensor name of the written checkpoint */
  tensors?: string[];
  /** meta_checkpoint: the parameters of the tensors written (the state dict as save_pretrained writes it), and of those outside a multimodal model's language model */
  parameters?: number;
  outsideLanguageModel?: number;
}

export type HfJob =
  | { op: 'logits'; model: string; ids: number[][]; mask: number[][]; matmulActivations?: 'f32' | 'bf16'; loadDtype?: 'float32' | 'bfloat16' }
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
      /** transformers' bad_words_ids */
      badWordsIds?: number[][];
    }
  | { op: 'warp'; logits: number[][]; temperature: number; topK: number; topP: number; minP: number | null; typicalP?: number }
  | { op: 'quantize_fp8'; model: string; out: string; block: [number, number]; partialBlocks?: boolean; dequantizedOut?: string; scheme?: 'fp8' | 'compressed-tensors-channel' }
  /** the model as the language model of a multimodal checkpoint transformers builds and saves (scripts/hf_reference.py wrap_job) */
  | { op: 'wrap'; model: string; out: string; wrapper: 'mistral3' | 'llama4'; prefix: 'release' | 'module'; tie: boolean | null; seed?: number }
  | { op: 'wrap'; textConfig: Record<string, unknown>; out: string; wrapper: 'qwen3_vl_moe' | 'glm4v_moe' | 'qwen3_5_moe'; tie: boolean | null; expertsTransposed: boolean; seed?: number }
  /** a weightless checkpoint (sparse shards) at the size of transformers' config of modelType (scripts/hf_reference.py meta_checkpoint_job) */
  | { op: 'meta_checkpoint'; modelType: string; out: string; config?: Record<string, unknown>; multimodal?: boolean; shardBytes?: number };

/** Runs jobs through scripts/hf_reference.py in ONE Python process (imports cost seconds). */
export function runHfJobs(jobs: HfJob[]): Promise<{ transformers: string; torch: string; results: HfJobResult[] }> {
  return runPythonJson(pythonPath, path.join(repoRoot, 'scripts', 'hf_reference.py'), { jobs });
}

/**
 * runHfJobs for jobs under keys: each result into `results` under its job's key; answers the
 * versions that ran them ("transformers …, torch …"), for failure messages.
 */
export async function runHfJobsInto(jobs: ReadonlyArray<{ key: string; job: HfJob }>, results: Map<string, HfJobResult>): Promise<string> {
  const run = await runHfJobs(jobs.map((j) => j.job));
  jobs.forEach((j, i) => results.set(j.key, run.results[i]));
  return `transformers ${run.transformers}, torch ${run.torch}`;
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
