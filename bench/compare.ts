// Side-by-side comparison of gateway builds: each build's fully traced gateway (target 5 of the
// benchmark) is started once, then all are loaded in short alternating windows, so that the
// machine's drifting background load hits them alike. Reports per-build medians and the paired
// ratio to the first build (window i of a build against window i of the first).
//
//   node bench/compare.ts [--rounds N] [--duration S] [--connections C] [--sampler S] BUILD [BUILD ...]
//
// BUILD is DIR[:NAME=VALUE...][:--node-flag...]: a compiled gateway directly under the repository
// root (holding src/main.js), with environment settings and Node flags for it alone, e.g.
// `dist:OTEL_TRACES_SAMPLER=always_off` (tracing on against off in one build) or
// `dist:--max-semi-space-size=8` (flags come after the production ones, so they win). DIR is
// `dist`, or `dist-before` made with:
//   git worktree add .worktrees/before <commit>
//   node_modules/.bin/tsc -p .worktrees/before/tsconfig.json --outDir dist-before
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadTool, runLoad } from './lib/load.ts';
import { cpuMicros, freePort, killAll, rssSampler, start, stop, threadCpuMicros, waitForPort, type Proc } from './lib/procs.ts';
import { median } from './lib/report.ts';
import { startSink } from './lib/sink.ts';
import { REQUEST_PATH } from './lib/targets.ts';
import { startUpstream } from './lib/upstream.ts';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, '..');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '10' },
    duration: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    sampler: { type: 'string', default: 'always_on' },
  },
});
const rounds = Number(values.rounds);
const duration = Number(values.duration);
const connections = Number(values.connections);
function die(message: string): never {
  process.stderr.write(`compare: ${message}\n`);
  process.exit(2);
}
if (positionals.length < 2) die('name at least two builds (e.g. dist-before dist)');
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 100)) die('--rounds: expected an integer 1-100');
if (!(Number.isInteger(duration) && duration >= 1 && duration <= 600)) die('--duration: expected whole seconds, 1-600');
if (!(Number.isInteger(connections) && connections >= 1)) die('--connections: expected a positive integer');
interface BuildSpec {
  label: string;
  dir: string;
  env: Record<string, string>;
  flags: string[];
}
const specs: BuildSpec[] = positionals.map((spec) => {
  const [dir = '', ...settings] = spec.split(':');
  const env: Record<string, string> = {};
  const flags: string[] = [];
  for (const setting of settings) {
    if (setting.startsWith('--')) {
      flags.push(setting);
      continue;
    }
    const eq = setting.indexOf('=');
    if (eq < 1) die(`${spec}: expected DIR[:NAME=VALUE...][:--flag...], got "${setting}"`);
    env[setting.slice(0, eq)] = setting.slice(eq + 1);
  }
  if (resolve(ROOT, dir, '..') !== ROOT) die(`${dir}: a build directory must sit directly under ${ROOT} (its modules resolve from there)`);
  if (!existsSync(join(ROOT, dir, 'src/main.js'))) die(`${dir}/src/main.js not found: not a compiled gateway`);
  return { label: [basename(dir), ...settings].join(':'), dir, env, flags };
});
if (new Set(specs.map((s) => s.label)).size !== specs.length) die('name each build once (the names label the results)');

process.on('exit', killAll);
const tmp = mkdtempSync(join(tmpdir(), 'gw-compare-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const nodeBin = process.execPath;

interface Build {
  name: string;
  proc: Proc;
  url: string;
  rps: number[];
  cpu: number[];
  /** Per window, µs per request: the main thread's user and system time, and the other threads'. */
  mainUser: number[];
  mainSystem: number[];
  others: number[];
  p99: number[];
  rss: number[];
}

const upstream = await startUpstream(tmp, nodeBin, BENCH);
const sink = await startSink();
const builds: Build[] = [];
process.stdout.write(`upstream: ${upstream.kind}; load: ${loadTool()}; ${rounds} rounds × ${duration} s at c=${connections}, sampler ${values.sampler}\n`);
for (const [i, { label: name, dir, env: own, flags }] of specs.entries()) {
  const port = await freePort();
  const work = join(tmp, String(i));
  mkdirSync(work, { recursive: true });
  const config = {
    listen: { host: '127.0.0.1', port },
    logging: { level: 'info', file: join(work, 'access.log') },
    upstreams: { nginx: { url: upstream.url } },
    routes: [{ name: 'api', prefix: '/api', upstream: 'nginx' }],
  };
  writeFileSync(join(work, 'gateway.json'), JSON.stringify(config));
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', OTEL_TRACES_SAMPLER: values.sampler, OTEL_EXPORTER_OTLP_ENDPOINT: `${sink.url}/${i}`, ...own };
  const args = ['--max-semi-space-size=16', '--no-allocation-site-pretenuring', ...flags, '--import', `./${dir}/src/telemetry/register.js`, `${dir}/src/main.js`, '--config', join(work, 'gateway.json')];
  const proc = start(name, nodeBin, args, { cwd: ROOT, env });
  await waitForPort(proc, port, 30_000);
  const url = `http://127.0.0.1:${port}${REQUEST_PATH}`;
  await runLoad(url, connections, 3, BENCH); // warm-up
  builds.push({ name, proc, url, rps: [], cpu: [], mainUser: [], mainSystem: [], others: [], p99: [], rss: [] });
}

for (let round = 0; round < rounds; round++) {
  // Alternate the order so that no build always follows the same neighbour.
  for (const b of round % 2 === 0 ? builds : [...builds].reverse()) {
    const cpu0 = cpuMicros(b.proc.pid);
    const threads0 = threadCpuMicros(b.proc.pid);
    const rss = rssSampler(b.proc.pid);
    const load = await runLoad(b.url, connections, duration, BENCH);
    b.cpu.push((cpuMicros(b.proc.pid) - cpu0) / load.requests);
    const threads = threadCpuMicros(b.proc.pid);
    b.mainUser.push((threads.mainUser - threads0.mainUser) / load.requests);
    b.mainSystem.push((threads.mainSystem - threads0.mainSystem) / load.requests);
    b.others.push((threads.others - threads0.others) / load.requests);
    b.rss.push(rss.stop() / 1048576);
    b.rps.push(load.reqPerSec);
    b.p99.push(load.p99Ms);
  }
}
for (const b of builds) await stop(b.proc, 'SIGTERM', 10_000);
await upstream.close();
await sink.close();

const base = builds[0]!;
// The CPU split by thread tells where a difference lies: the request thread's own work (user),
// its socket and file system calls (system), or V8's and libuv's helper threads (other).
process.stdout.write(
  `\n| build | req/s | paired ratio to ${base.name} | CPU µs/req | main user | main system | other threads | p99 ms | RSS MB |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n`,
);
for (const b of builds) {
  const paired = b.rps.map((r, i) => r / base.rps[i]!);
  process.stdout.write(
    `| ${b.name} | ${median(b.rps).toFixed(0)} | ${median(paired).toFixed(2)} (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}) | ${median(b.cpu).toFixed(0)} | ${median(b.mainUser).toFixed(1)} | ${median(b.mainSystem).toFixed(1)} | ${median(b.others).toFixed(1)} | ${median(b.p99).toFixed(2)} | ${median(b.rss).toFixed(0)} |\n`,
  );
}
process.exit(0);
