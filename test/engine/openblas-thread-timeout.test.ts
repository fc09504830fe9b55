import { describe, expect, it } from 'vitest';
import { applyOpenblasThreadTimeout, loadNativeEngine, OPENBLAS_THREAD_TIMEOUT_EXPONENT } from '../../src/engine/native.js';

describe('OPENBLAS_THREAD_TIMEOUT around the addon load', () => {
  it('is set only while the library loads, then removed again', () => {
    const env: NodeJS.ProcessEnv = {};
    const restore = applyOpenblasThreadTimeout(env);
    expect(env.OPENBLAS_THREAD_TIMEOUT).toBe(String(OPENBLAS_THREAD_TIMEOUT_EXPONENT));
    restore();
    expect('OPENBLAS_THREAD_TIMEOUT' in env).toBe(false);
  });

  it('leaves a value the user set alone', () => {
    const env: NodeJS.ProcessEnv = { OPENBLAS_THREAD_TIMEOUT: '28' };
    const restore = applyOpenblasThreadTimeout(env);
    expect(env.OPENBLAS_THREAD_TIMEOUT).toBe('28');
    restore();
    expect(env.OPENBLAS_THREAD_TIMEOUT).toBe('28');
  });

  it('does not leak into the process environment (child processes see the user\'s)', () => {
    const before = process.env.OPENBLAS_THREAD_TIMEOUT;
    loadNativeEngine({ threads: 1 });
    expect(process.env.OPENBLAS_THREAD_TIMEOUT).toBe(before);
  });
});
