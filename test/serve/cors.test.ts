/**
 * Cross-origin requests (cors.ts): what a browser needs to let a page's JavaScript read the
 * server's answers, by the Fetch standard's CORS protocol. A preflight (OPTIONS with
 * Access-Control-Request-Method) from an allowed origin is answered 204 with the method and the
 * requested headers allowed, before any API key is asked for (browsers send preflights without
 * credentials); an allowed origin's request gets Access-Control-Allow-Origin (its errors too, or
 * the page could not read them); any other origin gets none, which makes the browser withhold the
 * answer. Requests are made with node:http, which sends the Origin header as given.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllowedOrigins } from '../../src/serve/cors.js';
import { startServer, type Running } from './helpers.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(url: string, method: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const BODY = JSON.stringify({ model: 'tiny', prompt: 'ROMEO:', max_tokens: 2, temperature: 0 });
const preflight = (url: string, origin: string) =>
  send(`${url}/v1/completions`, 'OPTIONS', { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' });
const post = (url: string, origin: string, extra: Record<string, string> = {}) => send(`${url}/v1/completions`, 'POST', { origin, 'content-type': 'application/json', ...extra }, BODY);

describe('cross-origin requests', () => {
  let s: Running;
  let open: Running;
  beforeAll(async () => {
    s = await startServer({ apiKey: 'sesame' });
    open = await startServer({ allowedOrigins: ['*'] });
  });
  afterAll(async () => {
    await s?.close();
    await open?.close();
  });

  it('by default, pages on this machine: a preflight is allowed before the key is asked for, and the answer (an error too) carries the origin', async () => {
    for (const origin of ['http://localhost:3000', 'http://127.0.0.1:8080', 'https://localhost', 'http://[::1]:5173']) {
      const pre = await preflight(s.url, origin);
      expect(pre.status, origin).toBe(204);
      expect(pre.headers['access-control-allow-origin']).toBe(origin);
      expect(String(pre.headers['access-control-allow-methods'])).toMatch(/POST/);
      expect(String(pre.headers['access-control-allow-headers']).toLowerCase()).toMatch(/authorization.*content-type/);
      const ok = await post(s.url, origin, { authorization: 'Bearer sesame' });
      expect(ok.status).toBe(200);
      expect(ok.headers['access-control-allow-origin']).toBe(origin);
      expect(String(ok.headers.vary)).toMatch(/Origin/i);
      const refused = await post(s.url, origin);
      expect(refused.status).toBe(401);
      expect(refused.headers['access-control-allow-origin']).toBe(origin);
    }
  });

  it('other pages get no allowance, so a browser withholds the answer from them', async () => {
    for (const origin of ['https://evil.example', 'http://localhost.evil.example', 'http://127.0.0.1.evil.example:80', 'null']) {
      const pre = await preflight(s.url, origin);
      expect(pre.headers['access-control-allow-origin'], origin).toBeUndefined();
      const r = await post(s.url, origin, { authorization: 'Bearer sesame' });
      expect(r.headers['access-control-allow-origin'], origin).toBeUndefined();
    }
    // a request with no Origin (curl, the SDKs) is not a browser's and is served as before
    const plain = await send(`${s.url}/v1/completions`, 'POST', { 'content-type': 'application/json', authorization: 'Bearer sesame' }, BODY);
    expect(plain.status).toBe(200);
  });

  it('"*" allows every page', async () => {
    const pre = await preflight(open.url, 'https://app.example.com');
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
    const r = await post(open.url, 'https://app.example.com');
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('*');
  });

  it('--allowed-origins reads a JSON list (vLLM’s form) or a comma-separated one, and names what is not an origin', () => {
    expect(parseAllowedOrigins('["https://a.example", "http://b.example:8080"]')).toEqual(['https://a.example', 'http://b.example:8080']);
    expect(parseAllowedOrigins('https://a.example, *')).toEqual(['https://a.example', '*']);
    expect(() => parseAllowedOrigins('a.example')).toThrow(/"a.example" is not an origin/);
    expect(() => parseAllowedOrigins('https://a.example/path')).toThrow(/not an origin/);
    expect(() => parseAllowedOrigins('["x"')).toThrow(/not a JSON list/);
  });
});
