#!/usr/bin/env node
/**
 * `npm install` hook: builds the optional native engine (build/Release/rfid_moe_native.node,
 * N-API over OpenBLAS + LAPACKE) with node-gyp. It never fails the install: when the libraries,
 * a compiler or node-gyp are missing, or the build fails, it prints one line saying the pure-TS
 * engine will be used and how to enable the native one, and exits 0.
 *
 * Environment: RFID_MOE_SKIP_NATIVE=1 skips the build; RFID_MOE_NATIVE_VERBOSE=1 shows the
 * compiler output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addonPath = path.join(packageRoot, 'build', 'Release', 'rfid_moe_native.node');
const verbose = process.env.RFID_MOE_NATIVE_VERBOSE === '1';
const ENABLE =
  'to enable it: apt-get install libopenblas-dev liblapacke-dev (and a C++ compiler) && npm rebuild rfid-moe';

function fallback(reason) {
  console.log(`rfid-moe: native engine not built (${reason}); the pure-TS engine will be used — ${ENABLE}`);
  process.exit(0);
}

/** Include directories a compiler searches by default, plus the usual OpenBLAS locations. */
function includeDirs() {
  const dirs = ['/usr/include', '/usr/local/include', '/usr/include/openblas'];
  dirs.push('/opt/homebrew/opt/openblas/include', '/usr/local/opt/openblas/include');
  // Debian/Ubuntu multiarch: /usr/include/<triplet> (e.g. x86_64-linux-gnu).
  for (const base of ['/usr/include', '/usr/lib']) {
    try {
      for (const entry of readdirSync(base)) if (/-linux-gnu/.test(entry)) dirs.push(path.join(base, entry));
    } catch {
      // absent on this system
    }
  }
  return dirs;
}

function libraryDirs() {
  const dirs = ['/usr/lib', '/usr/lib64', '/usr/local/lib', '/lib', '/opt/homebrew/opt/openblas/lib', '/usr/local/opt/openblas/lib'];
  for (const base of ['/usr/lib', '/lib']) {
    try {
      for (const entry of readdirSync(base)) if (/-linux-gnu/.test(entry)) dirs.push(path.join(base, entry));
    } catch {
      // absent on this system
    }
  }
  return dirs;
}

function findFile(dirs, names) {
  for (const dir of dirs) for (const name of names) if (existsSync(path.join(dir, name))) return path.join(dir, name);
  return undefined;
}

/** npm's bundled node-gyp: npm tells lifecycle scripts where it is; otherwise look beside npm. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    try {
      const req = createRequire(process.env.npm_execpath);
      candidates.push(req.resolve('node-gyp/bin/node-gyp.js'));
    } catch {
      // npm without a bundled node-gyp
    }
  }
  const nodePrefix = path.resolve(path.dirname(process.execPath), '..');
  candidates.push(path.join(nodePrefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(nodePrefix, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally
  }
  return candidates.find((c) => c.endsWith('.js') && existsSync(c));
}

/**
 * node-gyp downloads Node's headers unless told where they are (`nodedir`). npm passes the
 * user's setting as npm_config_nodedir; when it is absent, use the running Node's own
 * headers if they are installed (distribution packages put them in <prefix>/include/node),
 * since the download needs the network.
 */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

function main() {
  if (process.env.RFID_MOE_SKIP_NATIVE === '1') fallback('RFID_MOE_SKIP_NATIVE=1');
  const incs = includeDirs();
  if (!findFile(incs, ['cblas.h'])) fallback('cblas.h not found');
  if (!findFile(incs, ['lapacke.h'])) fallback('lapacke.h not found');
  if (!findFile(libraryDirs(), ['libopenblas.so', 'libopenblas.dylib', 'libopenblas.a'])) fallback('libopenblas not found');
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) fallback('node-gyp not found');

  const build = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], {
    cwd: packageRoot,
    stdio: verbose ? 'inherit' : 'pipe',
    encoding: 'utf8',
    timeout: 10 * 60 * 1000,
  });
  if (build.error || build.status !== 0) {
    const detail = build.error ? build.error.message : `node-gyp exited with ${build.status}`;
    fallback(`${detail}${verbose ? '' : '; RFID_MOE_NATIVE_VERBOSE=1 shows the compiler output'}`);
  }
  if (!existsSync(addonPath)) fallback(`the build produced no ${path.relative(packageRoot, addonPath)}`);

  // Load it in a separate process: a library that links but does not load (wrong soname,
  // missing LAPACK symbols) must not be discovered only at first use.
  const probe = spawnSync(
    process.execPath,
    ['-e', 'const i = require(process.argv[1]).info(); console.log(i.config.trim() + " / " + i.corename + " kernels");', addonPath],
    { encoding: 'utf8', timeout: 60 * 1000 },
  );
  if (probe.status !== 0) {
    const firstLine = (probe.stderr || '').split('\n').find((l) => l.trim() !== '') ?? `exit ${probe.status}`;
    fallback(`the built addon does not load: ${firstLine.trim()}`);
  }
  console.log(`rfid-moe: native engine built (${probe.stdout.trim()})`);
}

try {
  main();
} catch (err) {
  fallback(`unexpected error: ${err instanceof Error ? err.message : String(err)}`);
}
