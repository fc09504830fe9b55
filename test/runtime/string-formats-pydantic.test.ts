/**
 * The string formats a schema constraint holds (string-rules.ts) against Pydantic's own parse, the
 * validator `chat.completions.parse()` runs on a response: every value the constraint completes,
 * among random candidates near each form, must be one Pydantic takes as the format's Python type
 * (scripts/pydantic_formats_check.py; Ajv's full formats are the second truth where it has the
 * format), and the common forms of each must be taken. Pydantic is installed with the `openai`
 * client (.ci/run).
 */
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import fc from 'fast-check';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { startingState } from '../../src/runtime/generation/grammar-constraint.js';
import { FORMAT_PATTERNS } from '../../src/runtime/generation/string-rules.js';
import { describeWithPydantic, pythonPath } from '../helpers/python.js';
import { runPythonJson } from '../helpers/python-json.js';
import { repoRoot } from '../helpers/shared-data.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false }));
const SCRIPT = path.join(repoRoot, 'scripts', 'pydantic_formats_check.py');

interface Verdicts {
  pydantic: string;
  formats: Record<string, string | undefined>;
  valid: Array<boolean | null>;
}

const taken = (format: string, value: string) => {
  const state = startingState({ type: 'string', format }, 'any');
  return state.push(JSON.stringify(value)) && state.complete;
};

const digits = (n: number) => fc.array(fc.constantFrom(...'0123456789'), { minLength: n, maxLength: n }).map((d) => d.join(''));
/** two-digit fields near their ranges, on both sides of each edge */
const two = (from: number, to: number) => fc.integer({ min: from, max: to }).map((n) => String(n).padStart(2, '0'));
const year = fc.oneof(digits(4), fc.constantFrom('0000', '0001', '1900', '2000', '2023', '2024', '2100', '2400', '9999'));
const date = fc.tuple(year, two(0, 13), two(0, 32)).map(([y, m, d]) => `${y}-${m}-${d}`);
const zone = fc.constantFrom('Z', '+01:00', '-23:59', '+24:00', 'z', '', '.5Z', '.123456+05:30', '.1234567Z', '+05:60');
const time = fc.tuple(two(0, 24), two(0, 60), two(0, 61), zone).map(([h, m, s, z]) => `${h}:${m}:${s}${z}`);
const part = (max: number) => fc.option(fc.integer({ min: 0, max }).map(String), { nil: undefined });
const duration = fc
  .tuple(part(99999), part(99), part(99), part(99), fc.boolean())
  .map(([d, h, m, s, t]) => `P${d === undefined ? '' : `${d}D`}${t || h !== undefined || m !== undefined || s !== undefined ? 'T' : ''}${h === undefined ? '' : `${h}H`}${m === undefined ? '' : `${m}M`}${s === undefined ? '' : `${s}S`}`);
const ipv4 = fc.oneof(fc.ipV4(), fc.ipV4Extended());
const ipv6 = fc.oneof(
  fc.ipV6(),
  fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':')),
);
const withPrefix = (ip: fc.Arbitrary<string>, max: number) => fc.tuple(ip, fc.option(fc.integer({ min: 0, max: max + 2 }), { nil: undefined })).map(([a, p]) => (p === undefined ? a : `${a}/${p}`));
/** networks with some trailing octets or groups cleared, under prefixes that do and do not clear them */
const cleared4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 4 }), fc.constantFrom(0, 8, 16, 24, 32, 31)).map(([ip, k, p]) => `${ip.split('.').map((o, i) => (i >= 4 - k ? '0' : o)).join('.')}/${p}`);
const cleared6 = fc
  .tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 8 }), fc.constantFrom(128, 64, 48, 32, 96))
  .map(([g, k, p]) => `${g.map((x, i) => (i >= 8 - k ? '0' : x.toString(16))).join(':')}/${p}`);
const base64 = fc.oneof(
  fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString('base64')),
  fc.array(fc.constantFrom(...'AZaz09+/=-_'), { maxLength: 12 }).map((c) => c.join('')),
);

const CANDIDATES: Record<string, fc.Arbitrary<string>> = {
  'date-time': fc.tuple(date, time).map(([d, t]) => `${d}T${t}`),
  date,
  time,
  duration,
  uuid: fc.oneof(fc.uuid(), fc.string({ minLength: 36, maxLength: 36 })),
  // (and a % in a path or query, percent-encoding or bare)
  uri: fc.oneof(fc.webUrl({ withQueryParameters: true }), fc.constantFrom('http://a.com/%', 'http://a.com/%2', 'http://a.com/%2F', 'http://a.com/%zz/b', 'https://a.com/?q=%20x', 'https://a.com/?q=%_,', 'http://a.com/a%41b')),
  ipv4,
  ipv6,
  ipvanyaddress: fc.oneof(ipv4, ipv6),
  ipv4interface: withPrefix(ipv4, 32),
  ipv6interface: withPrefix(ipv6, 128),
  ipvanyinterface: fc.oneof(withPrefix(ipv4, 32), withPrefix(ipv6, 128)),
  ipv4network: fc.oneof(cleared4, withPrefix(ipv4, 32)),
  ipv6network: fc.oneof(cleared6, withPrefix(ipv6, 128)),
  ipvanynetwork: fc.oneof(cleared4, cleared6),
  base64,
};

const COMMON: Record<string, string[]> = {
  duration: ['P1D', 'PT5M', 'PT1H30M', 'P2DT3H4M5S', 'PT0S', 'PT90M'],
  ipvanyaddress: ['10.0.0.1', '2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
  ipv4interface: ['192.168.1.10/24', '10.0.0.1'],
  ipv6interface: ['2001:db8:0:0:0:0:0:1/64'],
  ipvanyinterface: ['192.168.1.10/24', '2001:db8:0:0:0:0:0:1/64'],
  ipv4network: ['192.168.1.0/24', '10.0.0.0/8', '172.16.0.0/16', '10.1.2.3/32', '0.0.0.0/0'],
  ipv6network: ['2001:db8:0:0:0:0:0:0/64', '2001:db8:1:0:0:0:0:0/48'],
  ipvanynetwork: ['192.168.1.0/24', '2001:db8:0:0:0:0:0:0/64'],
  base64: ['', 'aGVsbG8=', 'aGVsbG8gd29ybGQ=', 'YQ=='],
};

describeWithPydantic('held string formats against Pydantic’s parse', () => {
  const cases: Array<{ format: string; value: string; common: boolean }> = [];
  let verdicts: Verdicts;

  beforeAll(async () => {
    for (const [format, arbitrary] of Object.entries(CANDIDATES)) {
      for (const value of fc.sample(arbitrary, { numRuns: 600, seed: 17 })) if (taken(format, value)) cases.push({ format, value, common: false });
      for (const value of COMMON[format] ?? []) cases.push({ format, value, common: true });
    }
    verdicts = await runPythonJson<Verdicts>(pythonPath, SCRIPT, { cases: cases.map(({ format, value }) => ({ format, value })) });
  }, 120_000);

  it('each format held is the one Pydantic writes for its type', () => {
    for (const format of Object.keys(CANDIDATES)) {
      expect(FORMAT_PATTERNS.has(format), format).toBe(true);
      expect(verdicts.formats[format], format).toBe(format);
    }
  });

  it('every value the constraint completes, among random candidates near each form, is one Pydantic takes (and Ajv, where it has the format)', () => {
    for (const format of Object.keys(CANDIDATES)) {
      const mine = cases.map((c, i) => ({ ...c, valid: verdicts.valid[i] })).filter((c) => c.format === format && !c.common);
      expect(mine.length, `${format}: no candidate was taken`).toBeGreaterThan(5);
      const ajvFormat = ajv.formats[format] !== undefined ? ajv.compile({ type: 'string', format }) : null;
      for (const { value, valid } of mine) {
        expect(valid, `${format}: ${JSON.stringify(value)} taken, refused by Pydantic ${verdicts.pydantic}`).toBe(true);
        if (ajvFormat !== null) expect(ajvFormat(value), `${format}: ${JSON.stringify(value)} refused by Ajv`).toBe(true);
      }
    }
  });

  it('the common forms are taken, and Pydantic takes them', () => {
    cases.forEach((c, i) => {
      if (!c.common) return;
      expect(taken(c.format, c.value), `${c.format}: ${c.value}`).toBe(true);
      expect(verdicts.valid[i], `${c.format}: ${c.value}`).toBe(true);
    });
    // and a network whose host bits are not zero, which Python's ip_network refuses, is refused where it stops being one
    expect(taken('ipv4network', '192.168.1.7/24')).toBe(false);
    expect(taken('duration', 'PT')).toBe(false);
  });
});
