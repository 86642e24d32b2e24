// The benchmark of issue 7: our gateway against the usual Node setups, on this machine.
// `npm run bench` (builds first) or `node bench/run.ts --help`. See README.md, "Performance".
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTool, runLoad, type LoadResult } from './lib/load.ts';
import { benchCpu, cpuMicros, killAll, machineCpu, rssBytes, rssSampler, sleep } from './lib/procs.ts';
import { summarizeProfile, type ProfileSummary } from './lib/profile.ts';
import { medians, ratios, ratiosText, table, type Ratios, type Row } from './lib/report.ts';
import { startSink, type Sink } from './lib/sink.ts';
import { TARGETS, type Ctx, type RunningTarget, type TargetDef } from './lib/targets.ts';
import { startUpstream } from './lib/upstream.ts';

const BENCH = import.meta.dirname;
const ROOT = resolve(BENCH, '..');
const NODE = process.execPath;
const MB = 1024 * 1024;

const USAGE = `usage: node bench/run.ts [options]
  --rounds N           interleaved rounds (default 3)
  --duration S         seconds per load window (default 10)
  --connections LIST   concurrencies, e.g. 50,8 (default 50,8)
  --targets LIST       which targets, e.g. 1,2,5 (default 1,2,3,4,5,6)
  --warmup S           unmeasured load before the windows (default: 30% of --duration, 1-3 s)
  --quiet-wait S       shared machines: before each window wait up to S s for other processes to use
                       < 15% of the CPU, and repeat a window (at most twice) that they disturbed
                       (default 60; 0 = off, as with --smoke)
  --smoke              1 round, 2 s, c=8, all targets (what the test suite runs)
  --soak SECONDS       target 5 alone at c=50 for SECONDS, reporting heap after GC and RSS
  --faults             with --soak: the OTLP sink answers 503 for 10 s every 30 s, and the upstream
                       goes away for 5 s every 30 s; reports what the clients saw by status
  --profile            target 5 alone for one round with --cpu-prof; prints the top 25 self-time functions
  --out FILE           results JSON (default bench/results/<timestamp>.json)
targets: 1 direct to upstream, 2 fastify + @fastify/http-proxy, 3 the same + OTel auto-instrumentations,
         4 gateway with sampler always_off, 5 gateway fully traced (always_on, OTLP to the sink),
         6 target 5 with two proxy threads (workers: 2)`;

function die(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function numberList(s: string, what: string): number[] {
  const list = s.split(',').map((x) => Number(x.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n <= 0)) die(`--${what}: expected a comma-separated list of positive integers, got "${s}"`);
  return list;
}

function parseCli() {
  try {
    return parseArgs({
      options: {
        rounds: { type: 'string' },
        duration: { type: 'string' },
        connections: { type: 'string' },
        targets: { type: 'string' },
        warmup: { type: 'string' },
        'quiet-wait': { type: 'string' },
        smoke: { type: 'boolean', default: false },
        soak: { type: 'string' },
        profile: { type: 'boolean', default: false },
        faults: { type: 'boolean', default: false },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (err) {
    die(`${(err as Error).message}\n${USAGE}`);
  }
}
const parsed = parseCli();
if (parsed.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const mode: 'bench' | 'soak' | 'profile' = parsed.soak !== undefined ? 'soak' : parsed.profile ? 'profile' : 'bench';
const opts = {
  rounds: parsed.smoke || mode !== 'bench' ? 1 : Number(parsed.rounds ?? 3),
  duration: parsed.smoke ? 2 : Number(parsed.duration ?? 10),
  connections: parsed.smoke ? [8] : numberList(parsed.connections ?? '50,8', 'connections'),
  targets: mode !== 'bench' ? [5] : numberList(parsed.targets ?? '1,2,3,4,5,6', 'targets'),
  soakSeconds: Number(parsed.soak ?? 0),
  warmup: 0,
  quietWait: parsed.smoke ? 0 : Number(parsed['quiet-wait'] ?? 60),
};
/** "Other load" above this share of the machine makes a window noisy. */
const QUIET_PCT = 15;
if (!Number.isInteger(opts.rounds) || opts.rounds < 1 || opts.rounds > 100) die('--rounds: expected an integer 1-100');
if (!(Number.isInteger(opts.duration) && opts.duration >= 1 && opts.duration <= 600)) die('--duration: expected whole seconds, 1-600');
if (mode === 'soak' && !(opts.soakSeconds >= 5 && opts.soakSeconds <= 86_400)) die('--soak: expected 5-86400 seconds');
// wrk counts whole seconds, so the warm-up is 0 (none) or at least 1 s.
opts.warmup = parsed.warmup !== undefined ? Number(parsed.warmup) : Math.min(3, Math.max(1, Math.round(opts.duration * 0.3)));
if (!(Number.isInteger(opts.warmup) && opts.warmup >= 0 && opts.warmup <= 60)) die('--warmup: expected whole seconds, 0-60');
if (!(opts.quietWait >= 0 && opts.quietWait <= 3600)) die('--quiet-wait: expected 0-3600 seconds');
const unknown = opts.targets.filter((t) => !TARGETS.some((d) => d.id === t));
if (unknown.length) die(`--targets: unknown target(s) ${unknown.join(', ')} (1-6)`);
if (!existsSync(join(ROOT, 'dist/src/main.js'))) die('dist/src/main.js not found: build first (npm run build), or use npm run bench');

// Every process the bench starts dies with it, whatever the way out.
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping every process it started\n`);
    killAll();
    process.exit(130);
  });
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const tmp = mkdtempSync(join(tmpdir(), 'gw-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function gitCommit(): string | undefined {
  // Read .git directly: the bench must not run git.
  try {
    const head = readFileSync(join(ROOT, '.git/HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    const loose = join(ROOT, '.git', ref);
    if (existsSync(loose)) return readFileSync(loose, 'utf8').trim();
    const packed = readFileSync(join(ROOT, '.git/packed-refs'), 'utf8');
    return packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0];
  } catch {
    return undefined;
  }
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function fileSize(file: string | undefined): number {
  try {
    return file ? statSync(file).size : 0;
  } catch {
    return 0;
  }
}

/** Starts a target and checks that one request through it answers 200 with the upstream's body. */
async function startChecked(def: TargetDef, ctx: Ctx, key: string, extra: Parameters<TargetDef['start']>[2] = {}): Promise<RunningTarget> {
  const t0 = performance.now();
  const running = await def.start(ctx, key, extra);
  const res = await fetch(running.url, { signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  if (res.status !== 200 || !body.includes('"ok":true')) {
    await running.stop();
    throw new Error(`target ${def.id} (${def.name}) answered ${res.status} ${body.slice(0, 200)}`);
  }
  log(`  target ${def.id} (${def.name}): pid ${running.proc.pid}, port ${running.port}, ready in ${Math.round(performance.now() - t0)} ms`);
  return running;
}

/** Scrapes /metrics like Prometheus would (once per window) and returns the gateway's heap in use. */
async function scrapeHeapUsed(port: number): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    let sum = 0;
    let seen = false;
    for (const line of text.split('\n')) {
      if (line.startsWith('v8js_memory_heap_used_bytes')) {
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
        seen = true;
      }
    }
    return seen ? sum : null;
  } catch {
    return null;
  }
}

interface Window {
  load: LoadResult;
  cpuUs: number;
  upstreamCpuUs: number;
  rssMax: number;
  /** Share of the machine's CPU used by processes other than the target, upstream, wrk and the bench. */
  otherCpuPct: number;
}

/** CPU share of the machine used by other processes over `ms`, while ours are (nearly) idle. */
async function otherLoadPct(pids: number[], ms: number): Promise<number> {
  const m0 = machineCpu();
  const b0 = benchCpu();
  const p0 = pids.map(cpuMicros);
  await sleep(ms);
  const m1 = machineCpu();
  const b1 = benchCpu();
  const ours = pids.reduce((s, pid, i) => s + (cpuMicros(pid) - p0[i]!), 0) + (b1.selfUs - b0.selfUs);
  return Math.max(0, (100 * (m1.busyUs - m0.busyUs - ours)) / (m1.totalUs - m0.totalUs));
}

/** Waits (bounded by --quiet-wait) until other processes leave the machine mostly idle. */
async function waitForQuiet(pids: number[]): Promise<void> {
  if (opts.quietWait <= 0) return;
  const deadline = performance.now() + opts.quietWait * 1000;
  let pct = await otherLoadPct(pids, 1000);
  if (pct < QUIET_PCT) return;
  process.stdout.write(`    waiting for the machine to quieten (other load ${pct.toFixed(0)}%)`);
  while (pct >= QUIET_PCT && performance.now() < deadline) {
    pct = await otherLoadPct(pids, 2000);
    process.stdout.write('.');
  }
  log(pct < QUIET_PCT ? ' ok' : ` gave up after ${opts.quietWait} s (other load ${pct.toFixed(0)}%)`);
}

async function measure(running: RunningTarget, ctx: Ctx, connections: number, seconds: number): Promise<Window> {
  const pid = running.proc.pid;
  const upPid = ctx.upstream.proc.pid;
  const machine0 = machineCpu();
  const bench0 = benchCpu();
  const cpu0 = cpuMicros(pid);
  const up0 = cpuMicros(upPid);
  const rss = rssSampler(pid);
  const load = await runLoad(running.url, connections, seconds, BENCH);
  const cpuUs = cpuMicros(pid) - cpu0;
  const upstreamCpuUs = cpuMicros(upPid) - up0;
  const machine1 = machineCpu();
  const bench1 = benchCpu();
  // Everything else that ran during the window (other users' tests, builds...): a noise gauge for
  // shared machines. wrk's CPU arrives in the bench's cutime+cstime when it is reaped at the end.
  const ours =
    cpuUs +
    (pid === upPid ? 0 : upstreamCpuUs) +
    (bench1.selfUs - bench0.selfUs) +
    (bench1.reapedChildrenUs - bench0.reapedChildrenUs);
  const otherCpuPct = Math.max(0, (100 * (machine1.busyUs - machine0.busyUs - ours)) / (machine1.totalUs - machine0.totalUs));
  return { load, cpuUs, upstreamCpuUs, rssMax: rss.stop(), otherCpuPct };
}

/** One target, one round: start, probe, warm up, measure each concurrency, stop (flushing spans), count spans. */
async function runTarget(def: TargetDef, ctx: Ctx, sink: Sink, round: number, extra: Parameters<TargetDef['start']>[2] = {}): Promise<{ rows: Row[]; windowsUs: Array<[number, number]> }> {
  const key = `t${def.id}-r${round}`;
  const running = await startChecked(def, ctx, key, extra);
  let sent = 1; // the probe
  let accounting: SoakOutcome | undefined;
  const windows: Array<{ connections: number; w: Window }> = [];
  const windowsUs: Array<[number, number]> = [];
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  try {
    if (opts.warmup > 0) {
      // JIT and connection pools warm up unmeasured; its requests still count for spans per request.
      const warm = await runLoad(running.url, Math.max(...opts.connections), opts.warmup, BENCH);
      sent += warm.requests;
    }
    for (const c of opts.connections) {
      await sleep(300);
      const pids = [...new Set([running.proc.pid, ctx.upstream.proc.pid])];
      let w: Window;
      for (let attempt = 0; ; attempt++) {
        await waitForQuiet(pids);
        const from = nowUs();
        w = await measure(running, ctx, c, opts.duration);
        windowsUs.push([from, nowUs()]);
        sent += w.load.requests;
        if (opts.quietWait <= 0 || w.otherCpuPct < QUIET_PCT || attempt >= 2) break;
        log(`    c=${c}: disturbed (other load ${w.otherCpuPct.toFixed(0)}% of the machine): repeating the window`);
      }
      windows.push({ connections: c, w });
      if (def.id >= 4) await scrapeHeapUsed(running.port);
      log(`    c=${c}: ${Math.round(w.load.reqPerSec)} req/s, p99 ${w.load.p99Ms.toFixed(2)} ms, ${w.load.errors} errors, other load ${w.otherCpuPct.toFixed(0)}% of the machine`);
    }
    // What the gateway itself counted (exported / dropped for a full queue / failed), before the final flush.
    if (def.id >= 4) accounting = await scrapeOutcome(running.port).catch(() => undefined);
    const lost = (accounting?.telemetrySpans.dropped ?? 0) + (accounting?.telemetrySpans.failed ?? 0);
    if (lost > 0) log(`    spans not exported, as the gateway counted them: ${JSON.stringify(accounting!.telemetrySpans)}`);
  } finally {
    await running.stop();
  }
  const logBytes = fileSize(running.logFile);
  const telemetrySpans = accounting?.telemetrySpans;
  if (running.logFile) rmSync(running.logFile, { force: true });
  let spansPerReq: number | null = null;
  let bytesPerReq: number | null = null;
  if (def.exports && running.sinkKey) {
    const counts = sink.counts(running.sinkKey);
    if (counts.badBodies) log(`    warning: the sink could not decode ${counts.badBodies} export(s) from target ${def.id}`);
    spansPerReq = counts.spans / sent;
    bytesPerReq = counts.traceBytes / sent;
  }
  const rows = windows.map(({ connections, w }) => ({
    round,
    target: def.id,
    name: def.name,
    connections,
    requests: w.load.requests,
    durationS: w.load.durationS,
    reqPerSec: w.load.reqPerSec,
    p50Ms: w.load.p50Ms,
    p99Ms: w.load.p99Ms,
    errors: w.load.errors,
    errorDetail: w.load.errorDetail,
    cpuUsPerReq: w.cpuUs / w.load.requests,
    upstreamCpuUsPerReq: w.upstreamCpuUs / w.load.requests,
    rssMaxMB: w.rssMax / MB,
    otherCpuPct: w.otherCpuPct,
    spansPerReq,
    otlpTraceBytesPerReq: bytesPerReq,
    accessLogBytesPerReq: running.logFile ? logBytes / sent : null,
    ...(telemetrySpans ? { telemetrySpans } : {}),
  }));
  return { rows, windowsUs };
}

interface SoakSample {
  t: number;
  rssMB: number;
  /** Heap after the last full (Mark-Compact) GC, from --trace-gc. */
  heapAfterGcMB: number | null;
  fullGcs: number;
  /** v8js_memory_heap_used_bytes summed over spaces, from /metrics (includes garbage not yet collected). */
  heapUsedMB: number | null;
  /** Open file descriptors of the target (/proc/<pid>/fd). */
  fds: number;
}

/** Counters from the gateway's /metrics at the end of a soak: what clients got, and why. */
interface SoakOutcome {
  byStatus: Record<string, number>;
  upstreamErrors: Record<string, number>;
  telemetrySpans: Record<string, number>;
}

async function scrapeOutcome(port: number): Promise<SoakOutcome> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const out: SoakOutcome = { byStatus: {}, upstreamErrors: {}, telemetrySpans: {} };
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(line)?.[1] ?? '?';
    if (line.startsWith('http_server_request_duration_seconds_count{')) {
      const status = label('http_response_status_code');
      out.byStatus[status] = (out.byStatus[status] ?? 0) + value;
    } else if (line.startsWith('gateway_upstream_errors_total{')) {
      out.upstreamErrors[label('error_type')] = (out.upstreamErrors[label('error_type')] ?? 0) + value;
    } else if (line.startsWith('gateway_telemetry_spans_total{')) {
      out.telemetrySpans[label('outcome')] = value;
    }
  }
  return out;
}

/**
 * Fault injection for `--soak --faults`: a collector that fails for 10 s every 30 s and an
 * upstream that disappears for 5 s every 30 s (offset by 15 s), until stopped.
 */
function startFaults(ctx: Ctx, sink: Sink): { events: Array<{ t: number; what: string }>; stop(): Promise<void> } {
  const events: Array<{ t: number; what: string }> = [];
  const t0 = performance.now();
  let stopped = false;
  const note = (what: string) => {
    events.push({ t: Math.round((performance.now() - t0) / 1000), what });
    log(`  fault: ${what} at ${events.at(-1)!.t} s`);
  };
  const wait = async (ms: number) => {
    const end = performance.now() + ms;
    while (!stopped && performance.now() < end) await sleep(Math.min(250, end - performance.now()));
  };
  const collector = (async () => {
    await wait(20_000);
    while (!stopped) {
      sink.setFailing(true);
      note('collector failing (503)');
      await wait(10_000);
      sink.setFailing(false);
      note('collector back');
      await wait(20_000);
    }
  })();
  const upstream = (async () => {
    await wait(15_000);
    while (!stopped) {
      const port = ctx.upstream.port;
      await ctx.upstream.close();
      note('upstream down');
      await wait(5_000);
      ctx.upstream = await startUpstream(ctx.tmp, ctx.nodeBin, ctx.benchDir, port);
      note('upstream back');
      await wait(25_000);
    }
  })();
  return {
    events,
    stop: async () => {
      stopped = true;
      sink.setFailing(false);
      await Promise.allSettled([collector, upstream]);
    },
  };
}

async function soak(
  def: TargetDef,
  ctx: Ctx,
  sink: Sink,
): Promise<{ samples: SoakSample[]; load: LoadResult; spansPerReq: number; slopeMBPerMin: number | null; faults?: Array<{ t: number; what: string }>; outcome?: SoakOutcome }> {
  // --trace-gc prints one line per GC on stdout (the gateway's own logs go to its log file); the
  // "-> N MB" of a Mark-Compact is the heap after a full GC, read without an inspector or --expose-gc.
  // Each line names its isolate ("[pid:0x…]"): the span export thread has its own heap. The
  // request thread's isolate is the one that collects most often; only its full GCs are reported.
  const gcsByIsolate = new Map<string, { lines: number; full: Array<{ t: number; mb: number }> }>();
  let main: { lines: number; full: Array<{ t: number; mb: number }> } = { lines: 0, full: [] };
  let buffered = '';
  const t0 = performance.now();
  const onStdout = (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const iso = /^\[\d+:(0x[0-9a-f]+)\]/.exec(line)?.[1];
      if (iso === undefined) continue;
      let gcs = gcsByIsolate.get(iso);
      if (gcs === undefined) gcsByIsolate.set(iso, (gcs = { lines: 0, full: [] }));
      gcs.lines++;
      if (gcs.lines > main.lines) main = gcs;
      const m = /Mark-Compact[^\d]*[\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/.exec(line);
      if (m) gcs.full.push({ t: (performance.now() - t0) / 1000, mb: Number(m[1]) });
    }
  };
  const running = await startChecked(def, ctx, 't5-soak', { nodeArgs: ['--trace-gc'], onStdout });
  const c = opts.connections[0]!;
  const every = Math.max(5, Math.min(30, Math.round(opts.soakSeconds / 20)));
  const samples: SoakSample[] = [];
  log(`  soak: c=${c} for ${opts.soakSeconds} s, a sample every ${every} s\n`);
  log('| t s | RSS MB | heap after full GC MB | full GCs | heap used MB (/metrics) | open fds |');
  log('|----:|-------:|----------------------:|---------:|------------------------:|---------:|');
  let load: LoadResult;
  const loadStart = performance.now();
  const loadDone = runLoad(running.url, c, opts.soakSeconds, BENCH);
  const faults = parsed.faults ? startFaults(ctx, sink) : undefined;
  let outcome: SoakOutcome | undefined;
  try {
    let lastCount = 0;
    let done = false;
    void loadDone.finally(() => (done = true));
    for (let i = 1; !done && i * every <= opts.soakSeconds; i++) {
      const wait = loadStart + i * every * 1000 - performance.now();
      await Promise.race([sleep(Math.max(0, wait)), loadDone.catch(() => undefined)]);
      if (done) break;
      const heapUsed = await scrapeHeapUsed(running.port);
      const last = main.full[main.full.length - 1];
      const s: SoakSample = {
        t: Math.round((performance.now() - loadStart) / 1000),
        rssMB: rssBytes(running.proc.pid) / MB,
        heapAfterGcMB: last ? last.mb : null,
        fullGcs: main.full.length - lastCount,
        heapUsedMB: heapUsed === null ? null : heapUsed / MB,
        fds: readdirSync(`/proc/${running.proc.pid}/fd`).length,
      };
      lastCount = main.full.length;
      samples.push(s);
      log(`| ${s.t} | ${s.rssMB.toFixed(0)} | ${s.heapAfterGcMB?.toFixed(1) ?? '–'} | ${s.fullGcs} | ${s.heapUsedMB?.toFixed(1) ?? '–'} | ${s.fds} |`);
      // The access log of a long soak would fill the disk; truncating is safe, pino appends (O_APPEND).
      if (running.logFile) truncateSync(running.logFile, 0);
    }
    load = await loadDone;
    await faults?.stop();
    if (faults) outcome = await scrapeOutcome(running.port);
  } finally {
    await faults?.stop();
    await running.stop();
  }
  const counts = sink.counts('t5-soak');
  // Slope of heap-after-full-GC over the second half of the soak (the first half includes warm-up growth).
  const half = main.full.filter((g) => g.t >= (performance.now() - t0) / 2000);
  let slopeMBPerMin: number | null = null;
  if (half.length >= 3) {
    const mt = half.reduce((s, g) => s + g.t, 0) / half.length;
    const mm = half.reduce((s, g) => s + g.mb, 0) / half.length;
    const num = half.reduce((s, g) => s + (g.t - mt) * (g.mb - mm), 0);
    const den = half.reduce((s, g) => s + (g.t - mt) ** 2, 0);
    slopeMBPerMin = den > 0 ? (num / den) * 60 : null;
  }
  return { samples, load, spansPerReq: counts.spans / (load.requests + 1), slopeMBPerMin, ...(faults ? { faults: faults.events, outcome } : {}) };
}

function newestProfile(dir: string, since: number): string | undefined {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    // A generous overall bound: a wedged run must not hang CI or a terminal forever.
    process.stderr.write('bench: overall time limit exceeded\n');
    process.exit(3);
  }, overallLimitMs());
  deadline.unref();

  log(`tracing-gateway benchmark (${mode}${parsed.smoke ? ', smoke' : ''}) — ${new Date().toISOString()}`);
  log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, commit ${gitCommit()?.slice(0, 12) ?? '?'}`);
  const upstream = await startUpstream(tmp, NODE, BENCH);
  log(`upstream: ${upstream.kind} at ${upstream.url}`);
  const sink = await startSink();
  log(`OTLP sink: ${sink.url} (http/protobuf, the SDKs' default; spans counted by walking the protobuf Span messages)`);
  log(`load: ${loadTool()}; ${opts.duration} s per window after ${opts.warmup} s warm-up; c = ${opts.connections.join(', ')}`);
  const ctx: Ctx = { root: ROOT, benchDir: BENCH, nodeBin: NODE, tmp, upstream, sinkUrl: sink.url };
  const defs = opts.targets.map((id) => TARGETS.find((d) => d.id === id)!);

  const outFile = resolve(parsed.out ?? join(BENCH, 'results', `${stamp}.json`));
  mkdirSync(dirname(outFile), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    mode,
    smoke: parsed.smoke,
    commit: gitCommit(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    upstream: upstream.kind,
    load: loadTool(),
    sink: 'OTLP/HTTP, http/protobuf (SDK default); spans counted by walking ExportTraceServiceRequest → ResourceSpans → ScopeSpans → Span',
    options: opts,
    command: `node bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
  };

  try {
    if (mode === 'soak') {
      log(`\n## soak: target 5 (${defs[0]!.name})`);
      const r = await soak(defs[0]!, ctx, sink);
      log(`\nsoak done: ${r.load.requests} requests, ${Math.round(r.load.reqPerSec)} req/s, p99 ${r.load.p99Ms.toFixed(2)} ms, ${r.load.errors} errors, ${r.spansPerReq.toFixed(2)} spans/req`);
      log(`heap after full GC, second half: ${r.slopeMBPerMin === null ? 'too few full GCs for a slope' : `${r.slopeMBPerMin >= 0 ? '+' : ''}${r.slopeMBPerMin.toFixed(2)} MB/min`}`);
      if (r.outcome) {
        log(`responses by status (gateway /metrics): ${JSON.stringify(r.outcome.byStatus)}`);
        log(`gateway-generated upstream errors: ${JSON.stringify(r.outcome.upstreamErrors)}; spans: ${JSON.stringify(r.outcome.telemetrySpans)}`);
        log(`fds: first ${r.samples[0]?.fds ?? '?'}, last ${r.samples.at(-1)?.fds ?? '?'}, max ${Math.max(...r.samples.map((x) => x.fds))}`);
      }
      writeFileSync(outFile, `${JSON.stringify({ meta, soak: r }, null, 2)}\n`);
      log(`results: ${relative(process.cwd(), outFile)}`);
      return;
    }

    let profile: { file: string; summary: ProfileSummary } | undefined;
    const profileDir = join(BENCH, 'results', 'profiles');
    const rows: Row[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      log(`\n## round ${round}/${opts.rounds}`);
      const roundRows: Row[] = [];
      // The order alternates between rounds: on a machine whose speed drifts, a fixed order
      // would always give the last target the slowest minutes of each round.
      for (const def of round % 2 === 1 ? defs : [...defs].reverse()) {
        let extra: Parameters<TargetDef['start']>[2] = {};
        const since = Date.now();
        if (mode === 'profile') {
          mkdirSync(profileDir, { recursive: true });
          extra = { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `gateway-${stamp}.cpuprofile`] };
        }
        const { rows: targetRows, windowsUs } = await runTarget(def, ctx, sink, round, extra);
        roundRows.push(...targetRows);
        if (mode === 'profile') {
          const file = newestProfile(profileDir, since - 1000);
          if (!file) throw new Error(`no .cpuprofile written to ${profileDir}`);
          profile = { file, summary: summarizeProfile(file, ROOT, 25, windowsUs) };
        }
      }
      rows.push(...roundRows);
      log(`\n${table(roundRows.sort((a, b) => b.connections - a.connections || a.target - b.target))}`);
    }
    const med = medians(rows);
    const rat: Ratios = ratios(med);
    log(`\n## medians over ${opts.rounds} round(s)\n\n${table(med, { relativeTo2: true })}\n\n${ratiosText(rat)}`);
    const noisiest = Math.max(...rows.map((r) => r.otherCpuPct));
    if (noisiest > 10) {
      log(`\nwarning: other processes used up to ${noisiest.toFixed(0)}% of the machine during a load window ("other load"); these figures are noisy, rerun when the machine is quieter`);
    }
    if (profile) {
      const s = profile.summary;
      log(`\n## CPU profile of target 5: ${relative(process.cwd(), profile.file)}`);
      const span = s.windowsOnly ? 'during the load windows' : 'over the whole process lifetime (load windows not found in the profile clock)';
      log(`busy ${s.busyMs.toFixed(0)} ms of ${s.totalMs.toFixed(0)} ms sampled ${span} (GC ${s.gcMs.toFixed(0)} ms); top ${s.top.length} by self time:\n`);
      log('| self ms | % busy | function | location | main caller |\n|--:|--:|---|---|---|');
      for (const t of s.top) log(`| ${t.selfMs.toFixed(1)} | ${t.busyPct.toFixed(1)} | ${t.function} | ${t.location} | ${t.topCaller} |`);
      log('\nself time by package (native code charged to its JavaScript caller):\n\n| self ms | % busy | package |\n|--:|--:|---|');
      for (const g of s.groups.slice(0, 15)) log(`| ${g.selfMs.toFixed(1)} | ${g.busyPct.toFixed(1)} | ${g.group} |`);
    }
    writeFileSync(outFile, `${JSON.stringify({ meta, rows, medians: med, ratios: rat, profile }, null, 2)}\n`);
    log(`\nresults: ${relative(process.cwd(), outFile)}`);
  } finally {
    await upstream.close();
    await sink.close();
  }
}

function overallLimitMs(): number {
  if (mode === 'soak') return (opts.soakSeconds + 180) * 1000;
  const perTarget = opts.warmup + opts.connections.length * 3 * (opts.duration + opts.quietWait + 2) + 60;
  return (opts.rounds * opts.targets.length * perTarget + 60) * 1000;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

