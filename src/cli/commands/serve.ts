/**
 * `rfid-moe serve <model-or-dir>… [--port 8000] [--host 127.0.0.1] [--memory-budget BYTES]
 *   [--policy tyche|keep-alive|on-demand|lru]`
 *
 * One process serves every given model (a directory, or name=dir) through an OpenAI-compatible
 * HTTP API; the residency policy decides which are in memory within the budget. A model whose
 * checkpoint is broken is refused with its reason on stderr and the others are served. SIGTERM
 * or SIGINT drains: in-flight requests finish, then the process exits 0.
 */
import { Option, type Command } from 'commander';
import { createEngine, parseEngineChoice } from '../../engine/index.js';
import { POLICY_NAMES, type PolicyName } from '../../serve/policies.js';
import { fmtBytes } from '../../serve/residency.js';
import { createServer } from '../../serve/server.js';
import { OptionError, parseInteger } from '../options.js';
import { fail } from '../errors.js';
import { addOptions, defaultText, engineOptions } from '../shared-options.js';

interface ServeCliOptions {
  port: string;
  host: string;
  memoryBudget?: string;
  policy: string;
  keepAlive: string;
  maxBatchSize: string;
  drainTimeout: string;
  engine: string;
  threads?: string;
  quiet?: boolean;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** "12000000000", "12G", "12GB" (powers of 1000), "11.2GiB" (powers of 1024). */
export function parseBytes(flag: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new OptionError(`${flag} must be a byte count such as 8000000000, 8G or 7.5GiB; got "${value}"`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!(bytes > 0)) throw new OptionError(`${flag} must be positive, got "${value}"`);
  return bytes;
}

function parsePolicy(value: string): PolicyName {
  if ((POLICY_NAMES as readonly string[]).includes(value)) return value as PolicyName;
  throw new OptionError(`--policy must be one of ${POLICY_NAMES.join(', ')}; got "${value}"`);
}

export function register(program: Command): void {
  addOptions(
    program
      .command('serve')
      .description('serve models through an OpenAI-compatible HTTP API, with Tyche-style pre-loading')
      .argument('<models...>', 'model directories (original or compressed), or name=dir to choose the id clients use')
      .option('--port <n>', 'TCP port (0 = any free port)', '8000')
      .option('--host <addr>', 'address to listen on', '127.0.0.1')
      .addOption(defaultText(new Option('--memory-budget <bytes>', 'bytes all resident models may hold together, e.g. 8G'), 'half the machine memory'))
      .option('--policy <name>', `residency policy: ${POLICY_NAMES.join(' | ')}`, 'tyche')
      .option('--keep-alive <seconds>', 'keep-alive TTL, and Tyche’s TTL while a model’s arrival rate is unknown', '60')
      .option('--max-batch-size <n>', 'requests decoded together per model (continuous batching)', '32')
      .option('--drain-timeout <seconds>', 'on SIGTERM, how long in-flight requests may run before they are aborted', '30'),
    engineOptions(),
  )
    .option('--quiet', 'no load/unload messages on stderr', false)
    .action(async (models: string[], opts: ServeCliOptions) => serve(models, opts));
}

async function serve(models: string[], opts: ServeCliOptions): Promise<void> {
  const port = parseInteger('--port', opts.port, 0);
  if (port > 65535) throw new OptionError(`--port must be at most 65535, got ${port}`);
  const policy = parsePolicy(opts.policy);
  const memoryBudget = opts.memoryBudget === undefined ? undefined : parseBytes('--memory-budget', opts.memoryBudget);
  const keepAliveMs = parseInteger('--keep-alive', opts.keepAlive, 1) * 1000;
  const maxBatchSize = parseInteger('--max-batch-size', opts.maxBatchSize, 1);
  const drainTimeoutMs = parseInteger('--drain-timeout', opts.drainTimeout, 0) * 1000;
  const threads = opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1);
  const { engine, notice } = await createEngine(parseEngineChoice(opts.engine), { threads });
  const log = (line: string) => {
    if (!opts.quiet) process.stderr.write(`${line}\n`);
  };
  log(notice);
  const server = await createServer({
    models,
    engine,
    policy,
    memoryBudget,
    keepAliveMs,
    maxBatchSize,
    drainTimeoutMs,
    idleGc: true,
    onRefused: (m) => process.stderr.write(`rfid-moe: refusing model ${m.id} (${m.dir}): ${m.reason}\n`),
    onLoad: (e) => log(`loaded ${e.id} (${fmtBytes(e.bytes)}, ${(e.ms / 1000).toFixed(2)} s, ${e.reason})`),
  });
  if (server.models.size === 0) {
    await server.close();
    throw new Error('none of the given models can be served (see the reasons above)');
  }
  const url = await server.listen({ port, host: opts.host });
  // always printed, --quiet or not: scripts read the URL from it (with --port 0 too)
  process.stderr.write(`serving ${[...server.models.keys()].join(', ')} at ${url} (policy ${policy}, memory budget ${fmtBytes(server.residency.budgetBytes)})\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: draining in-flight requests`);
    server.close().then(
      () => {
        log('drained; exiting');
        process.exit(0);
      },
      (err) => fail(err, false),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
