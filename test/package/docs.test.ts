/**
 * The documentation says what the code does: docs/method.md lists every recipe option with the
 * default the recipe parser fills in, and the README, docs/engines.md and `rfid-moe doctor` give
 * the same CUDA / cuDNN versions for @tensorflow/tfjs-node-gpu.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TFJS_NODE_GPU_NEEDS } from '../../src/cli/commands/doctor.js';
import { parseRecipe } from '../../src/compress/recipe.js';
import { repoRoot } from '../helpers/shared-data.js';

const read = (file: string) => readFileSync(path.join(repoRoot, file), 'utf8');

/** Dotted leaf keys of a parsed recipe with their values (arrays are leaves). */
function leaves(value: unknown, prefix = ''): Array<[string, unknown]> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
  }
  return [[prefix, value]];
}

function shown(value: unknown): string {
  if (typeof value === 'string') return `\`${value}\``;
  if (Array.isArray(value)) return `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
  return typeof value === 'boolean' ? `\`${value}\`` : String(value);
}

describe('documentation matches the code', () => {
  it('docs/method.md gives every recipe option with its default', () => {
    const method = read('docs/method.md');
    const defaults = leaves(parseRecipe({ retain: 0.5 })).filter(([key]) => key !== 'retain' && key !== 'budgetGivenAs');
    expect(defaults.length).toBeGreaterThan(10);
    const wrong: string[] = [];
    for (const [key, value] of defaults) {
      const row = method.split('\n').find((line) => line.startsWith(`| \`${key}\` |`));
      if (!row) wrong.push(`${key}: no table row`);
      else if (row.split('|')[2].trim() !== shown(value)) wrong.push(`${key}: documented ${row.split('|')[2].trim()}, parser default ${shown(value)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('README, docs/engines.md and doctor name the same CUDA and cuDNN versions for tfjs-node-gpu', () => {
    const { cuda, cudnn, driver } = TFJS_NODE_GPU_NEEDS;
    for (const file of ['README.md', 'docs/engines.md']) {
      const text = read(file).replace(/\*\*/g, '');
      expect(text, file).toMatch(/@tensorflow\/tfjs-node-gpu` 4\.22/);
      expect(text, file).toContain(`CUDA Toolkit ${cuda}`);
      expect(text, file).toContain(`cuDNN ${cudnn}`);
      expect(text, file).toContain(`newer than ${driver}.x`);
    }
    expect(read('README.md')).toMatch(/^### GPU: CUDA and cuDNN versions$/m);
  });
});
