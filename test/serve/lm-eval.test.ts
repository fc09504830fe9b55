/**
 * lm-evaluation-harness, the tool ML engineers check a served model's quality with, against
 * `rfid-moe serve` on both shipped models (scripts/lm_eval_check.py). Its `local-completions`
 * model scores text through /v1/completions (echo + logprobs) and generates with stop strings;
 * it runs once with the tokenizer on the client and once with the server's (/tokenizer_info,
 * /tokenize, /detokenize). Independent truth: the same harness and tasks on lm-eval's `hf` model,
 * transformers in float32 on the same checkpoint. Every document's score, every choice's score
 * and greedy flag, and every generated text must agree. The same holds for a compressed
 * checkpoint served factored against its dense output in transformers, and for chat:
 * `local-chat-completions` against the hf model rendering the same chat template.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { hasSharedData, repoRoot, sharedDataSkipReason, sharedPath } from '../helpers/shared-data.js';
import { describeWithLmEval, pythonPath } from '../helpers/python.js';
import { runLmEvalCheck, type LmEvalCheck, type LmEvalJob, type LmEvalRun } from '../helpers/lm-eval.js';
import { startServer, tinyWithChatTemplate } from './helpers.js';
import { compress } from '../../src/compress/pipeline.js';

const MAX_LENGTH = 130; // tokens per request: shorter than the scored paragraphs, so they are windowed
const MODELS = ['mixtral-tiny-shakespeare', 'qwen3-moe-tiny-shakespeare'];

const runCheck = (job: LmEvalJob): Promise<LmEvalCheck> => runLmEvalCheck(pythonPath, job);

/**
 * Per document of each task: the API run's responses agree with the hf run's, each score within
 * `abs` + `rel`·|score| and word perplexity within `perplexityRel`.
 */
function expectAgreement(api: LmEvalRun, hf: LmEvalRun, { abs = 1e-3, rel = 0, perplexityRel = 1e-5 } = {}): void {
  const close = (got: number, want: number, what: string) => expect(Math.abs(got - want), what).toBeLessThan(abs + rel * Math.abs(want));
  expect(Object.keys(api.samples).sort()).toEqual(['rfid_choice', 'rfid_generate', 'rfid_rolling']);
  for (const [task, docs] of Object.entries(hf.samples)) {
    const ours = api.samples[task];
    expect(ours.map((d) => d.doc_id)).toEqual(docs.map((d) => d.doc_id));
    docs.forEach((want, i) => {
      const got = ours[i].resps;
      if (task === 'rfid_generate') expect(got, `${task} document ${want.doc_id}`).toEqual(want.resps);
      else if (task === 'rfid_rolling') close(got[0] as number, want.resps[0] as number, `${task} document ${want.doc_id}`);
      else
        (want.resps as Array<[number, boolean]>).forEach(([ll, greedy], c) => {
          const [gotLl, gotGreedy] = got[c] as [number, boolean];
          close(gotLl, ll, `${task} document ${want.doc_id} choice ${c}`);
          expect(gotGreedy, `${task} document ${want.doc_id} choice ${c} is_greedy`).toBe(greedy);
        });
    });
  }
  expect(api.results.rfid_choice).toEqual(hf.results.rfid_choice);
  expect(api.results.rfid_generate).toEqual(hf.results.rfid_generate);
  const perplexity = (r: LmEvalRun) => r.results.rfid_rolling.word_perplexity;
  expect(Math.abs(perplexity(api) / perplexity(hf) - 1)).toBeLessThan(perplexityRel);
}

describeWithLmEval('lm-evaluation-harness against the server, and against transformers', () => {
  if (!hasSharedData) {
    it.skip(`needs the Tiny Shakespeare text: ${sharedDataSkipReason}`, () => undefined);
    return;
  }
  for (const model of MODELS) {
    it(`${model}: local-completions (client and server tokenizers) agrees with lm-eval's hf model`, async () => {
      // one model per server: the remote tokenizer's endpoints name no model (vLLM serves one)
      const s = await startServer({ models: [`${model}=${path.join(repoRoot, 'examples', 'models', model)}`] });
      onTestFinished(() => s.close());
      const check = await runCheck({
        base_url: `${s.url}/v1/completions`,
        model,
        model_dir: path.join(repoRoot, 'examples', 'models', model),
        text_file: sharedPath('tinyshakespeare', 'input.txt'),
        max_length: MAX_LENGTH,
        backends: ['hf', 'api', 'api-remote'],
        documents: 6,
      });
      // the scored paragraphs are longer than one window: the harness's windowing is exercised
      expect(Math.max(...check.rolling_tokens)).toBeGreaterThan(2 * MAX_LENGTH);
      expect(check.runs.hf.results.rfid_rolling.sample_len).toBe(6);
      expectAgreement(check.runs.api, check.runs.hf);
      expectAgreement(check.runs['api-remote'], check.runs.hf);
      // the server's tokenizer gave the client's ids: the same requests, the same answers (to the
      // rounding of the batches they shared with others, which differ between the two runs)
      expectAgreement(check.runs['api-remote'], check.runs.api, { abs: 1e-4 });
    }, 600_000);
  }

  it('a compressed checkpoint served factored scores as its dense form does in transformers', async () => {
    // one compression run written twice: factored (served, its experts as two thin products) and
    // dense (the same weights multiplied out, loaded by lm-eval's hf model)
    const work = mkdtempSync(path.join(tmpdir(), 'rfid-lm-eval-compressed-'));
    onTestFinished(() => rmSync(work, { recursive: true, force: true }));
    const source = path.join(repoRoot, 'examples', 'models', MODELS[0]);
    const dataset = { file: sharedPath('tinyshakespeare', 'input.txt'), samples: 8, seqLen: 128, seed: 1 };
    const factored = path.join(work, 'factored');
    const dense = path.join(work, 'dense');
    await compress(source, { retain: 0.6 }, { out: factored, dataset, evaluation: false });
    await compress(source, { retain: 0.6 }, { out: dense, storage: 'dense', dataset, evaluation: false });
    // every expert factored for the whole run: by default the server builds dense copies of the
    // hottest between requests, rounded to BF16 as the dense output is, and which documents were
    // scored before that varied from run to run (and with it the agreement checked below)
    const s = await startServer({ models: [`compressed=${factored}`], materialiseExperts: false });
    onTestFinished(() => s.close());
    expect(s.server.models.get('compressed')!.kind).toBe('compressed-factored');
    const check = await runCheck({
      base_url: `${s.url}/v1/completions`,
      model: 'compressed',
      model_dir: factored,
      hf_model_dir: dense,
      text_file: sharedPath('tinyshakespeare', 'input.txt'),
      max_length: MAX_LENGTH,
      backends: ['hf', 'api'],
      documents: 6,
    });
    // the dense form holds each expert's product A·B rounded once more, to BF16 (up to 2⁻⁹ of a
    // weight), which the factored products do not: scores agree to about 1e-4 relative, not to the
    // last digits. Measured with every expert factored, three runs alike: documents within
    // 2.6e-5 relative but one at 2.34e-4, word perplexity 2.06e-4 below transformers'. A wrong
    // product moves these by orders of magnitude more; 5e-4 leaves the rounding room.
    expectAgreement(check.runs.api, check.runs.hf, { abs: 1e-3, rel: 5e-4, perplexityRel: 5e-4 });
  }, 600_000);

  it('chat: local-chat-completions generates what lm-eval’s hf model generates with transformers’ chat template', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'rfid-lm-eval-chat-'));
    onTestFinished(() => rmSync(work, { recursive: true, force: true }));
    const dir = tinyWithChatTemplate(path.join(work, 'chatml')); // MODELS[0], the shipped Mixtral-shaped model
    const s = await startServer({ models: [`chat=${dir}`] });
    onTestFinished(() => s.close());
    const check = await runCheck({
      base_url: `${s.url}/v1/completions`,
      model: 'chat',
      model_dir: dir,
      text_file: sharedPath('tinyshakespeare', 'input.txt'),
      max_length: MAX_LENGTH,
      backends: ['hf-chat', 'chat'],
      documents: 6,
    });
    const texts = (r: LmEvalRun) => r.samples.rfid_generate.map((d) => d.resps[0] as string);
    expect(texts(check.runs.chat)).toEqual(texts(check.runs['hf-chat']));
    expect(texts(check.runs.chat).every((t) => t.length > 0)).toBe(true);
    // every document went through /v1/chat/completions
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/rfid_moe_requests_total\{[^}]*endpoint="chat"[^}]*status="200"[^}]*\} 6\b/);
  }, 600_000);
});
