/** The choice of the live sequence a new prompt copies its cached beginning from (shared-prefix.ts). */
import { describe, expect, it } from 'vitest';
import { longestSharedBeginning, MIN_SHARED_POSITIONS, type PrefixCandidate } from '../../src/runtime/generation/shared-prefix.js';

const seq = (prompt: number[], extra: Partial<PrefixCandidate> = {}): PrefixCandidate => ({ prompt: Int32Array.from(prompt), aborted: false, leader: null, promptLogprobs: null, promptTop: 0, cacheSalt: null, ...extra });
const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('longestSharedBeginning', () => {
  it('copies all shared tokens but the last; a whole prompt but its last token at any length, else at least 16', () => {
    const ids = Int32Array.from(range(10));
    expect(longestSharedBeginning([seq(range(10))], ids, null)?.positions).toBe(9);
    // ids are the candidate's beginning: all of ids but the last token, though fewer than 16
    expect(longestSharedBeginning([seq(range(30))], ids, null)?.positions).toBe(9);
    const long = Int32Array.from([...range(20), 90, 91]);
    expect(longestSharedBeginning([seq([...range(20), 80])], long, null)?.positions).toBe(19);
    // 12 shared of 15: below the minimum and not the whole prompt
    expect(longestSharedBeginning([seq([...range(12), 80, 81, 82])], Int32Array.from([...range(12), 70, 71, 72]), null)).toBeNull();
    expect(MIN_SHARED_POSITIONS).toBe(16);
    // nothing in common, or a one-token prompt
    expect(longestSharedBeginning([seq(range(20, 50))], long, null)).toBeNull();
    expect(longestSharedBeginning([seq([0])], Int32Array.of(0), null)).toBeNull();
  });

  it('the longest shared beginning wins; aborted sequences and those still waiting to copy are not leaders', () => {
    const ids = Int32Array.from([...range(40), 99]);
    const short = seq([...range(20), 70]);
    const longer = seq([...range(30), 70]);
    expect(longestSharedBeginning([short, longer], ids, null)?.leader).toBe(longer);
    expect(longestSharedBeginning([short, seq([...range(30), 70], { aborted: true })], ids, null)?.leader).toBe(short);
    expect(longestSharedBeginning([short, seq([...range(30), 70], { leader: short })], ids, null)?.leader).toBe(short);
  });

  it('a salted prompt (vLLM’s cache_salt) copies only from one of the same salt; unsalted ones from each other', () => {
    const ids = Int32Array.from(range(20));
    expect(longestSharedBeginning([seq(range(20), { cacheSalt: 'tenant-a' })], ids, null, 'tenant-b')).toBeNull();
    expect(longestSharedBeginning([seq(range(20), { cacheSalt: 'tenant-a' })], ids, null, null)).toBeNull();
    expect(longestSharedBeginning([seq(range(20))], ids, null, 'tenant-a')).toBeNull();
    expect(longestSharedBeginning([seq(range(20), { cacheSalt: 'tenant-a' })], ids, null, 'tenant-a')?.positions).toBe(19);
    expect(longestSharedBeginning([seq(range(20))], ids, null)?.positions).toBe(19);
  });

  it('a scored prompt copies only from one scored with the same alternatives', () => {
    const ids = Int32Array.from(range(20));
    expect(longestSharedBeginning([seq(range(20))], ids, 2)).toBeNull();
    expect(longestSharedBeginning([seq(range(20), { promptLogprobs: [null], promptTop: 1 })], ids, 2)).toBeNull();
    expect(longestSharedBeginning([seq(range(20), { promptLogprobs: [null], promptTop: 2 })], ids, 2)?.positions).toBe(19);
    // an unscored prompt may copy from a scored one
    expect(longestSharedBeginning([seq(range(20), { promptLogprobs: [null], promptTop: 2 })], ids, null)?.positions).toBe(19);
  });
});
