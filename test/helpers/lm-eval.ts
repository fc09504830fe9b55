/**
 * scripts/lm_eval_check.py from TypeScript: its job, its answer's types, and one call that runs
 * it (test/serve/lm-eval.test.ts, bench/lm-eval-vs-hf.ts).
 */
import path from 'node:path';
import { runPythonJson, type PythonJsonOptions } from './python-json.js';
import { repoRoot } from './shared-data.js';

/** One backend's evaluation: metrics per task, each document's responses, and its wall time. */
export interface LmEvalRun {
  results: Record<string, Record<string, number>>;
  samples: Record<string, Array<{ doc_id: number; resps: unknown[] }>>;
  seconds: number;
}

export type LmEvalBackend = 'hf' | 'api' | 'api-remote' | 'hf-chat' | 'chat';

export interface LmEvalCheck {
  lm_eval: string;
  /** tokens of each paragraph the rolling task scores */
  rolling_tokens: number[];
  runs: Record<LmEvalBackend, LmEvalRun>;
}

/** The job scripts/lm_eval_check.py reads (its docstring says what each field does). */
export interface LmEvalJob {
  base_url: string;
  model: string;
  model_dir: string;
  text_file: string;
  max_length: number;
  backends: LmEvalBackend[];
  documents: number;
  hf_model_dir?: string;
  hf_batch_size?: number;
  api_batch_size?: number;
  num_concurrent?: number;
}

export function runLmEvalCheck(python: string, job: LmEvalJob, opts?: PythonJsonOptions): Promise<LmEvalCheck> {
  return runPythonJson<LmEvalCheck>(python, path.join(repoRoot, 'scripts', 'lm_eval_check.py'), job, opts);
}
