#!/usr/bin/env python3
"""lm-evaluation-harness against a running `rfid-moe serve`, and against transformers on the same
checkpoint: the same tasks, the same harness, two backends.

The server is reached the way an ML engineer reaches it to check quality: lm-eval's
`local-completions` model, which scores a text by sending it with `echo: true, logprobs: 1,
max_tokens: 1` and reading the prompt's log-probabilities back, and which generates with `stop`
strings. It runs twice, once with the model's tokenizer loaded on the client (lm-eval sends token
ids) and once with the server's own (lm-eval's remote tokenizer: /tokenizer_info, /tokenize,
/detokenize). The reference is lm-eval's `hf` model on the checkpoint directory: transformers in
float32 on the CPU.

Three tasks are built from a text file (each paragraph a document):
- rolling: loglikelihood_rolling over whole paragraphs (word/byte perplexity, bits per byte), in
  windows shorter than the paragraphs, so the harness's windowing is exercised;
- choice: multiple_choice, a line's beginning followed by its own ending or another line's;
- generate: generate_until, greedy, stopping at a blank line or after a few tokens.

Backends "chat" and "hf-chat" run the generate task alone with lm-eval's --apply_chat_template:
each document becomes a user message, sent to /v1/chat/completions by lm-eval's
`local-chat-completions` model, or rendered with transformers' apply_chat_template for `hf`.

Input: one JSON object on stdin:
  {"base_url": "http://127.0.0.1:PORT/v1/completions", "model": "served id",
   "model_dir": "checkpoint directory", "text_file": "path", "max_length": 130,
   "backends": ["hf", "api", "api-remote"], "documents": 8,
   "hf_batch_size": 1, "api_batch_size": 4, "num_concurrent": 2,
   "hf_model_dir": "checkpoint directory for hf", "chat_max_length": 1024}  (the last five optional; hf_model_dir: hf loads
   another form of the served model, e.g. the dense output of a compression served factored)
Output: one JSON object on stdout: {"lm_eval": version, "rolling_tokens": [tokens of each scored
paragraph], "runs": {backend: {"results": {task: {metric: value}}, "samples": {task:
[per-document responses]}, "seconds": wall time}}}.
"""
from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path


def paragraphs(text: str, count: int, min_chars: int, max_chars: int) -> list[str]:
    """The first `count` paragraphs of the text between min_chars and max_chars long."""
    out = []
    for p in text.split("\n\n"):
        p = p.strip()
        if min_chars <= len(p) <= max_chars:
            out.append(p)
        if len(out) == count:
            break
    return out


def build_tasks(text: str, documents: int, folder: Path) -> list[dict]:
    rng = random.Random(1234)
    rolling = paragraphs(text, documents, 400, 2000)
    lines = [l.strip() for l in text.splitlines() if len(l.strip().split()) >= 6][: documents * 4]
    choice_docs = []
    for i in range(documents):
        words = lines[i].split()
        cut = len(words) // 2
        context = " ".join(words[:cut])
        endings = [" " + " ".join(words[cut:])]
        for j in rng.sample([k for k in range(len(lines)) if k != i], 3):
            other = lines[j].split()
            endings.append(" " + " ".join(other[len(other) // 2 :]))
        order = list(range(4))
        rng.shuffle(order)
        choice_docs.append({"context": context, "choices": [endings[k] for k in order], "label": order.index(0)})
    gen_docs = [{"context": p[: max(20, len(p) // 3)], "target": p[max(20, len(p) // 3) :]} for p in rolling]

    def write(name: str, docs: list[dict]) -> str:
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs))
        return str(path)

    def data(name: str, docs: list[dict]) -> dict:
        return {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": write(name, docs)}}, "test_split": "test"}

    return [
        {
            "task": "rfid_rolling",
            **data("rolling", [{"page": p} for p in rolling]),
            "output_type": "loglikelihood_rolling",
            "doc_to_text": "",
            "doc_to_target": "{{page}}",
            "metric_list": [{"metric": "word_perplexity"}, {"metric": "byte_perplexity"}, {"metric": "bits_per_byte"}],
        },
        {
            "task": "rfid_choice",
            **data("choice", choice_docs),
            "output_type": "multiple_choice",
            "doc_to_text": "{{context}}",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "{{label}}",
            "target_delimiter": "",
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
        },
        {
            "task": "rfid_generate",
            **data("generate", gen_docs),
            "output_type": "generate_until",
            "doc_to_text": "{{context}}",
            "doc_to_target": "{{target}}",
            "target_delimiter": "",
            "generation_kwargs": {"until": ["\n\n"], "max_gen_toks": 16, "do_sample": False, "temperature": 0.0},
            "metric_list": [{"metric": "exact_match"}],
        },
    ]


def model_of(backend: str, job: dict) -> tuple[str, dict]:
    length = int(job["max_length"])
    if backend == "hf":
        # local-completions keeps max_length − 1 tokens of input and windows its rolling scores at
        # max_length − 2 tokens; hf windows at its max_length: so max_length − 2 gives both the same
        # windows and the same left-truncation
        return "hf", {"pretrained": job.get("hf_model_dir", job["model_dir"]), "dtype": "float32", "device": "cpu", "max_length": length - 2, "batch_size": int(job.get("hf_batch_size", 1))}
    common = {"base_url": job["base_url"], "model": job["model"], "max_length": length, "num_concurrent": int(job.get("num_concurrent", 2)), "max_retries": 1, "batch_size": int(job.get("api_batch_size", 4))}
    if backend == "api":
        return "local-completions", {**common, "tokenizer_backend": "huggingface", "tokenizer": job["model_dir"], "tokenized_requests": True}
    if backend == "api-remote":
        return "local-completions", {**common, "tokenizer_backend": "remote", "tokenized_requests": True}
    if backend == "chat":
        # messages in, text out: the server renders the chat template and tokenizes
        chat_url = job["base_url"].replace("/v1/completions", "/v1/chat/completions")
        return "local-chat-completions", {**common, "base_url": chat_url, "max_length": job.get("chat_max_length", 1024), "tokenizer_backend": None, "tokenized_requests": False, "batch_size": 1}
    if backend == "hf-chat":
        # lm-eval cuts a context to fit max_length only where it holds the tokens (hf), never in a
        # chat request, which the server renders: so the chat runs get room for whole prompts
        return model_of("hf", {**job, "max_length": job.get("chat_max_length", 1024)})
    raise SystemExit(f"unknown backend {backend!r}")


def main() -> None:
    job = json.load(sys.stdin)
    text = Path(job["text_file"]).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="rfid-lm-eval-") as tmp:
        # the datasets library caches what it reads (and its builders' locks): here, not in the
        # user's ~/.cache, unless the caller chose a place (read when the library is imported)
        os.environ.setdefault("HF_DATASETS_CACHE", str(Path(tmp) / "datasets"))
        import lm_eval
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        out = {"lm_eval": getattr(lm_eval, "__version__", "unknown"), "runs": {}}
        tasks = build_tasks(text, int(job.get("documents", 8)), Path(tmp))
        # how long the scored paragraphs are, in the model's tokens (longer than a window: windowed)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
        pages = [json.loads(l)["page"] for l in Path(tasks[0]["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
        out["rolling_tokens"] = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in pages]
        # the tasks are given as configs: lm-eval's own thousands need not be indexed (seconds each time)
        tasks_only = TaskManager(include_defaults=False)
        for backend in job["backends"]:
            name, args = model_of(backend, job)
            chat = backend in ("chat", "hf-chat")
            started = time.perf_counter()
            result = simple_evaluate(
                model=name,
                model_args=args,
                # a chat model only generates: each document's text is the user's message, in the model's chat template
                tasks=[t for t in tasks if t["output_type"] == "generate_until"] if chat else tasks,
                apply_chat_template=chat,
                task_manager=tasks_only,
                log_samples=True,
                random_seed=0,
                numpy_random_seed=0,
                torch_random_seed=0,
                fewshot_random_seed=0,
                bootstrap_iters=0,
            )
            results = {t: {k.split(",")[0]: v for k, v in r.items() if isinstance(v, (int, float)) and not k.endswith("_stderr,none")} for t, r in result["results"].items()}
            samples = {
                t: [{"doc_id": s["doc_id"], "resps": s["filtered_resps"]} for s in sorted(docs, key=lambda s: s["doc_id"])]
                for t, docs in result["samples"].items()
            }
            # wall seconds of the whole evaluation, the model's loading included (hf: from disk; the server: already loaded)
            out["runs"][backend] = {"results": results, "samples": samples, "seconds": time.perf_counter() - started}
    json.dump(out, sys.stdout, default=lambda o: o.item() if hasattr(o, "item") else str(o))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
