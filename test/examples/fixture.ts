/**
 * A stand-in for the demo model and the shared data folder, small enough for a smoke test: a
 * tiny random Mixtral checkpoint carrying the demo model's tokenizer (vocabulary 4096), and a data
 * folder with the file layout the examples read, filled with seeded pseudo-English (no real
 * dataset text is needed or copied).
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { mulberry32 } from '../helpers/rng.js';
import { repoRoot } from '../helpers/shared-data.js';

export const DEMO_TOKENIZER = path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare', 'tokenizer.json');
const DEMO_VOCAB = 4096;

const WORDS = 'the king shall not go to war with his own men and yet the queen doth speak of love in every line we hear of it'.split(' ');

function prose(seed: number, lines: number): string {
  const rand = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = 4 + Math.floor(rand() * 8);
    out.push(Array.from({ length: n }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ') + '.');
  }
  return out.join('\n') + '\n';
}

export async function makeExampleFixture(dir: string): Promise<{ model: string; data: string }> {
  const model = path.join(dir, 'model');
  await makeTinyCheckpoint(model, 'mixtral', { seed: 5, vocabSize: DEMO_VOCAB });
  copyFileSync(DEMO_TOKENIZER, path.join(model, 'tokenizer.json'));
  const data = path.join(dir, 'data');
  const files: Array<[string, string]> = [
    ['tinyshakespeare/input.txt', prose(1, 400)],
    ['wikitext-2-raw/wiki.valid.raw', prose(2, 400)],
    ['wikitext-2-raw/wiki.test.raw', ` = Heading = \n \n${prose(3, 60)} \n`],
    ['ptb/ptb.test.txt', prose(4, 60)],
  ];
  for (const [rel, text] of files) {
    mkdirSync(path.dirname(path.join(data, rel)), { recursive: true });
    writeFileSync(path.join(data, rel), text);
  }
  return { model, data };
}
