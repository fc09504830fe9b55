/**
 * Cross-origin requests from web pages (CORS), so that a page's own JavaScript (the openai
 * client with dangerouslyAllowBrowser, a chat UI served from another port) can call the server.
 * Handled by @fastify/cors, Fastify's own plugin: preflights, Vary, and the headers each answer
 * needs are its job, not something to hand-write.
 *
 * Which pages may: by default those served from this machine (`http(s)://localhost`,
 * `127.0.0.1` or `[::1]`, any port), as Ollama does. vLLM allows every origin by default; here
 * that is `--allowed-origins '*'`, a choice to make knowingly: with it, any page a user opens
 * can drive a server on their machine that has no API key. Preflights are answered before the
 * API key is checked (browsers send them without credentials); the request itself still needs it.
 */
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/** The origins of pages on this machine, which the server allows by default. */
export const LOOPBACK_ORIGINS = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/;

/**
 * The allowed origins from a flag's text: a JSON list (vLLM's `--allowed-origins '["…"]'`) or a
 * comma-separated one; `*` allows every origin. Throws on an entry that is not an origin.
 */
export function parseAllowedOrigins(text: string): string[] {
  const trimmed = text.trim();
  let list: unknown;
  if (trimmed.startsWith('[')) {
    try {
      list = JSON.parse(trimmed);
    } catch (err) {
      throw new Error(`not a JSON list of origins: ${(err as Error).message}`);
    }
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw new Error('give a JSON list of strings, e.g. ["https://app.example.com"]');
  } else list = trimmed.split(',').map((s) => s.trim());
  const origins = (list as string[]).filter((s) => s.length > 0);
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[^/\s?#]+$/.test(o)) throw new Error(`"${o}" is not an origin: give scheme and host (and port), e.g. https://app.example.com, or *`);
  }
  return origins;
}

/** Registers CORS on `app` (before other hooks, so preflights pass them): `allowed` origins, or the loopback ones when undefined. */
export async function registerCors(app: FastifyInstance, allowed: readonly string[] | undefined): Promise<void> {
  const any = allowed?.includes('*') === true;
  const exact = new Set(allowed ?? []);
  await app.register(cors, {
    origin: any ? '*' : (origin, cb) => cb(null, origin !== undefined && (allowed === undefined ? LOOPBACK_ORIGINS.test(origin) : exact.has(origin))),
    methods: ['GET', 'POST', 'OPTIONS'],
    exposedHeaders: ['X-Request-Id'],
    maxAge: 600,
  });
}
