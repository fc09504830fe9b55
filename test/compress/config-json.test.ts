/**
 * The config.json writer keeps the source's text: every value with its exact lexeme (0.0, 1e-06,
 * 1.0 stay floats for transformers' typed configs), only the rfid_moe block added (and, for
 * factored outputs, model_type/architectures replaced by names transformers refuses).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RfidBlock } from '../../src/compress/output/block.js';
import { ConfigTextError, modelConfigOf, modelIdentity, outputConfigText, setTopLevelMembers } from '../../src/compress/output/config-json.js';
import { FACTORED_ARCHITECTURE, FACTORED_MODEL_TYPE } from '../../src/checkpoint/registry.js';
import { repoRoot } from '../helpers/shared-data.js';

const MIXTRAL = readFileSync(path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare', 'config.json'), 'utf8');

function block(storage: 'factored' | 'dense', raw: Record<string, unknown>): RfidBlock {
  return {
    format: 'rfid-moe',
    version: 1,
    tool: 'rfid-moe test',
    storage,
    runFingerprint: 'r',
    modelFingerprint: 'm',
    recipeFingerprint: 'p',
    recipe: { retain: 0.5, note: 'a "quoted" } brace' },
    factorDtype: 'F32',
    expertLayout: 'per-expert',
    matrixTypes: ['gate', 'up'],
    calibration: { source: 'stats', description: 'd', statsSha256: 's' },
    tensorNames: { basis: 'b', coefficients: 'c', residual: 'r' },
    layers: [],
    files: {},
    sourceSha256: { layers: [], rest: 's' },
    source: modelIdentity({ raw }),
  };
}

/** every number lexeme of a JSON text, in order */
const numberLexemes = (text: string) => text.match(/(?<=[:[,]\s*)-?\d[\d.eE+-]*/g) ?? [];

describe('config.json text writer', () => {
  it('dense: the source text is a byte-for-byte prefix-and-suffix of the output, float lexemes kept', () => {
    const raw = JSON.parse(MIXTRAL) as Record<string, unknown>;
    const out = outputConfigText(MIXTRAL, block('dense', raw));
    // the test's premise: the source holds floats JSON.stringify would rewrite
    expect(MIXTRAL).toContain('"router_jitter_noise": 0.0');
    expect(MIXTRAL).toContain('"rms_norm_eps": 1e-05');
    expect(JSON.stringify(raw)).not.toContain('0.0,');
    expect(out).toContain('"router_jitter_noise": 0.0');
    expect(out).toContain('"rms_norm_eps": 1e-05');
    expect(out).toContain('"rope_theta": 10000.0');
    const cut = MIXTRAL.trimEnd().lastIndexOf('}');
    expect(out.startsWith(MIXTRAL.slice(0, cut).trimEnd())).toBe(true);
    expect(out.endsWith('\n}\n')).toBe(true);
    const parsed = JSON.parse(out) as Record<string, unknown>;
    const { rfid_moe: written, ...rest } = parsed;
    expect(rest).toEqual(raw);
    expect(written).toEqual(block('dense', raw));
    // every number of the source keeps its lexeme, in order, before the block's
    expect(numberLexemes(out).slice(0, numberLexemes(MIXTRAL).length)).toEqual(numberLexemes(MIXTRAL));
    // indentation follows the source (2 spaces)
    expect(out).toContain('\n  "rfid_moe": {\n    "format": "rfid-moe",');
  });

  it('factored: model_type and architectures replaced in place, the model\'s own kept in the block', () => {
    const raw = JSON.parse(MIXTRAL) as Record<string, unknown>;
    const out = outputConfigText(MIXTRAL, block('factored', raw));
    const parsed = JSON.parse(out) as Record<string, unknown>;
    expect(parsed.model_type).toBe(FACTORED_MODEL_TYPE);
    expect(parsed.architectures).toEqual([FACTORED_ARCHITECTURE]);
    expect(Object.keys(parsed)).toEqual([...Object.keys(raw), 'rfid_moe']);
    expect(out).toContain('"router_jitter_noise": 0.0');
    const b = parsed.rfid_moe as RfidBlock;
    expect(b.source).toEqual({ modelType: 'mixtral', architectures: ['MixtralForCausalLM'] });
    // rfid-moe's loaders see the model's own identity again
    expect(modelConfigOf(parsed, b, 'x')).toEqual({ ...raw, rfid_moe: b });
    expect(() => modelConfigOf(parsed, { ...b, source: undefined }, 'x')).toThrow(/source\.modelType/);
  });

  it('replaces an rfid_moe block the source already had, once, keeping its position', () => {
    const src = '{\n    "a": 1.0,\n    "rfid_moe": {"old": [1, {"x": "}"}]},\n    "b": 2e-06\n}\n';
    const out = setTopLevelMembers(src, [['rfid_moe', { v: 2 }]]);
    expect(out).toBe('{\n    "a": 1.0,\n    "rfid_moe": {\n        "v": 2\n    },\n    "b": 2e-06\n}\n');
  });

  it('appends to single-line and empty objects, and to objects with odd spacing and escapes', () => {
    expect(setTopLevelMembers('{"a":0.0}', [['k', { x: 1 }]])).toBe('{"a":0.0,"k": {"x":1}}');
    expect(setTopLevelMembers('{}', [['k', 1]])).toBe('{\n  "k": 1\n}');
    const odd = '{\t"s\\"}": "v,\\\\" ,\n\t"n" :  -1.50E+3\n\n}';
    const out = setTopLevelMembers(odd, [['k', true]]);
    expect(out).toBe('{\t"s\\"}": "v,\\\\" ,\n\t"n" :  -1.50E+3,\n\t"k": true\n\n}');
    expect(JSON.parse(out)).toEqual({ ...(JSON.parse(odd) as object), k: true });
  });

  it('removes members without touching their neighbours', () => {
    const src = '{\n  "a": 0.0,\n  "b": [1.0],\n  "c": 1e-06\n}';
    expect(setTopLevelMembers(src, [['b', undefined]])).toBe('{\n  "a": 0.0,\n  "c": 1e-06\n}');
    expect(setTopLevelMembers(src, [['a', undefined]])).toBe('{\n  "b": [1.0],\n  "c": 1e-06\n}');
    expect(setTopLevelMembers(src, [['c', undefined], ['d', 2]])).toBe('{\n  "a": 0.0,\n  "b": [1.0],\n  "d": 2\n}');
  });

  it('dense from a factored config (densify): the model\'s identity restored, everything else kept', () => {
    const raw = JSON.parse(MIXTRAL) as Record<string, unknown>;
    const factored = outputConfigText(MIXTRAL, block('factored', raw));
    const dense = block('dense', raw);
    const back = outputConfigText(factored, dense);
    expect(back).toBe(outputConfigText(MIXTRAL, dense));
    // a source without architectures gets none back
    const bare = MIXTRAL.replace(/"architectures": \[\s*"MixtralForCausalLM"\s*\],\n\s*/, '');
    const bareRaw = JSON.parse(bare) as Record<string, unknown>;
    expect(bareRaw.architectures).toBeUndefined();
    const viaFactored = outputConfigText(outputConfigText(bare, block('factored', bareRaw)), block('dense', bareRaw));
    expect(JSON.parse(viaFactored)).toEqual({ ...bareRaw, rfid_moe: block('dense', bareRaw) });
  });

  it('refuses text that is not a JSON object', () => {
    expect(() => setTopLevelMembers('[1]', [['k', 1]])).toThrow(ConfigTextError);
    expect(() => setTopLevelMembers('{"a": 1', [['k', 1]])).toThrow(/not valid JSON/);
  });
});
