/**
 * Prometheus metrics of the server (prom-client), on a registry of its own so that several
 * servers in one process (tests, benchmarks) never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServeMetrics {
  registry: Registry;
  requests: Counter<'model' | 'endpoint' | 'status'>;
  promptTokens: Counter<'model'>;
  generatedTokens: Counter<'model'>;
  timeToFirstToken: Histogram<'model'>;
  modelLoads: Counter<'model' | 'reason'>;
  loadSeconds: Histogram<'model'>;
  loadWait: Histogram<'model'>;
  coldStarts: Counter<'model'>;
  residentBytes: Gauge<'model'>;
  inFlight: Gauge<'model'>;
}

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(opts: { residentBytes: () => Array<{ model: string; bytes: number }>; defaultMetrics?: boolean }): ServeMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'rfid_moe_' });
  const registers = [registry];
  return {
    registry,
    requests: new Counter({ name: 'rfid_moe_requests_total', help: 'Requests by model, endpoint and HTTP status', labelNames: ['model', 'endpoint', 'status'], registers }),
    promptTokens: new Counter({ name: 'rfid_moe_prompt_tokens_total', help: 'Prompt tokens processed', labelNames: ['model'], registers }),
    generatedTokens: new Counter({ name: 'rfid_moe_generated_tokens_total', help: 'Completion tokens generated', labelNames: ['model'], registers }),
    timeToFirstToken: new Histogram({ name: 'rfid_moe_time_to_first_token_seconds', help: 'From request arrival to the first generated token (includes load wait)', labelNames: ['model'], buckets: SECONDS_BUCKETS, registers }),
    modelLoads: new Counter({ name: 'rfid_moe_model_loads_total', help: 'Model loads, by reason (request = cold start, preload = predicted)', labelNames: ['model', 'reason'], registers }),
    loadSeconds: new Histogram({ name: 'rfid_moe_model_load_seconds', help: 'Time to load a model (read and materialise)', labelNames: ['model'], buckets: SECONDS_BUCKETS, registers }),
    loadWait: new Histogram({ name: 'rfid_moe_load_wait_seconds', help: 'Time requests spent waiting for their model to be loaded', labelNames: ['model'], buckets: SECONDS_BUCKETS, registers }),
    coldStarts: new Counter({ name: 'rfid_moe_cold_starts_total', help: 'Requests that arrived while their model was not resident', labelNames: ['model'], registers }),
    residentBytes: new Gauge({
      name: 'rfid_moe_resident_bytes',
      help: 'Bytes held (or reserved while loading) per model: weights and the KV cache reserved by its requests',
      labelNames: ['model'],
      registers,
      collect() {
        for (const { model, bytes } of opts.residentBytes()) this.set({ model }, bytes);
      },
    }),
    inFlight: new Gauge({ name: 'rfid_moe_requests_in_flight', help: 'Requests being served', labelNames: ['model'], registers }),
  };
}
