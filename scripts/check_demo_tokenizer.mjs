#!/usr/bin/env node
// Check that the demo model's tokenizer.json, loaded by the npm package @huggingface/tokenizers,
// encodes held-out text to exactly the ids of the Python encoder it was trained with
// (scripts/train_bpe_tokenizer.py, BpeEncoder), and decodes them back to the same text.
//
//   node scripts/check_demo_tokenizer.mjs [model dir] <data dir>
//
// The data dir (holding tinyshakespeare/ and wikitext-2-raw/) is the second argument or
// $RFID_MOE_DATA. The model dir defaults to examples/models/mixtral-tiny-shakespeare. Exits 1 on
// any mismatch, 2 when the data dir is not given.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';

const here = dirname(fileURLToPath(import.meta.url));
const modelDir = resolve(process.argv[2] ?? resolve(here, '../examples/models/mixtral-tiny-shakespeare'));
const dataArg = process.argv[3] ?? process.env.RFID_MOE_DATA;
if (!dataArg) {
  process.stderr.write('usage: node scripts/check_demo_tokenizer.mjs [model dir] <data dir> (or set RFID_MOE_DATA)\n');
  process.exit(2);
}
const dataDir = resolve(dataArg);
const python = process.env.PYTHON ?? '/usr/bin/python3';
const LINES_PER_FILE = 200;

// Python picks the held-out lines (the same split the trainer used) and encodes them.
const pythonProgram = `
import json, sys
from pathlib import Path
sys.path.insert(0, ${JSON.stringify(here)})
import train_bpe_tokenizer as t
enc = t.BpeEncoder.from_tokenizer_json(Path(${JSON.stringify(modelDir)}) / "tokenizer.json")
cases = []
for rel, _train, held_out in t.read_training_texts(Path(${JSON.stringify(dataDir)})):
    lines = [l for l in held_out.splitlines(keepends=True) if l.strip()][:${LINES_PER_FILE}]
    cases += [{"source": rel, "text": l} for l in lines]
    cases.append({"source": rel + " (whole held-out part)", "text": held_out})
cases.append({"source": "special token", "text": "first document" + t.END_OF_TEXT + "second document\\n"})
cases.append({"source": "unicode", "text": "naïve café — “quoted” 日本語 ½ ² \\u00a0nbsp\\ttab  \\n\\n  x"})
for c in cases:
    c["ids"] = enc.encode(c["text"])
json.dump(cases, sys.stdout)
`;
const cases = JSON.parse(execFileSync(python, ['-c', pythonProgram], { maxBuffer: 1 << 28, encoding: 'utf8' }));

const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(resolve(modelDir, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(resolve(modelDir, 'tokenizer_config.json'), 'utf8')),
);

let failures = 0;
let tokens = 0;
for (const { source, text, ids } of cases) {
  const got = tokenizer.encode(text).ids;
  tokens += got.length;
  const same = got.length === ids.length && got.every((id, i) => id === ids[i]);
  const decoded = tokenizer.decode(got, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  if (!same || decoded !== text) {
    failures += 1;
    if (failures <= 5) {
      const at = got.findIndex((id, i) => id !== ids[i]);
      console.error(`MISMATCH (${source}) ${JSON.stringify(text.slice(0, 80))}: first differing id at ${at}; ` +
        `js ${got.length} ids, python ${ids.length} ids; round trip ${decoded === text ? 'ok' : 'FAILED'}`);
    }
  }
}
console.log(`${cases.length - failures}/${cases.length} cases identical (${tokens} tokens) — ${modelDir}`);
process.exit(failures === 0 ? 0 : 1);
