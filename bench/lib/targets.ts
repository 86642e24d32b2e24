// The benchmark targets. Each runs as its own process on its own port (target 1 is the
// upstream itself), started with a clean environment so the caller's OTEL_* settings cannot leak in.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, start, stop, waitForPort, type Proc } from './procs.ts';
import type { Upstream } from './upstream.ts';

/** The path every load generator requests; all proxies forward it unchanged, so nginx sees the same request. */
export const REQUEST_PATH = '/api/hello';

export interface Ctx {
  root: string;
  benchDir: string;
  nodeBin: string;
  tmp: string;
  upstream: Upstream;
  sinkUrl: string;
}

export interface StartOptions {
  /** Extra node flags for the target (e.g. --cpu-prof, --trace-gc). */
  nodeArgs?: string[];
  /** Receives the target's stdout (used by --soak for --trace-gc lines). */
  onStdout?: (chunk: string) => void;
}

export interface RunningTarget {
  url: string;
  port: number;
  /** The process whose CPU and RSS are measured. */
  proc: Proc;
  /** Sink path prefix this instance exports to (undefined: it exports nothing). */
  sinkKey?: string;
  logFile?: string;
  stop(): Promise<void>;
}

export interface TargetDef {
  id: number;
  name: string;
  /** What "exporting" means for this target, for the spans column: null = not an exporter. */
  exports: boolean;
  start(ctx: Ctx, key: string, opts?: StartOptions): Promise<RunningTarget>;
}

function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  if (process.env.HOME) env.HOME = process.env.HOME;
  return env;
}

async function nodeTarget(name: string, ctx: Ctx, port: number, args: string[], env: NodeJS.ProcessEnv, opts: StartOptions): Promise<Proc> {
  const proc = start(name, ctx.nodeBin, [...(opts.nodeArgs ?? []), ...args], {
    cwd: ctx.root,
    env,
    ...(opts.onStdout ? { onStdout: opts.onStdout } : {}),
  });
  try {
    await waitForPort(proc, port, 30_000);
  } catch (err) {
    await stop(proc, 'SIGKILL', 1000);
    throw err;
  }
  return proc;
}

function stopper(proc: Proc): () => Promise<void> {
  // SIGTERM lets the SDKs flush their last batch to the sink before exit; bounded by stop()'s grace.
  return async () => void (await stop(proc, 'SIGTERM', 15_000));
}

const direct: TargetDef = {
  id: 1,
  name: 'direct to upstream',
  exports: false,
  async start(ctx) {
    const { upstream } = ctx;
    return { url: `${upstream.url}${REQUEST_PATH}`, port: upstream.port, proc: upstream.proc, stop: async () => {} };
  },
};

const fastifyProxy: TargetDef = {
  id: 2,
  name: 'fastify + http-proxy',
  exports: false,
  async start(ctx, _key, opts = {}) {
    const port = await freePort();
    const proc = await nodeTarget('fastify-proxy', ctx, port, [join(ctx.benchDir, 'targets/fastify-proxy.ts'), String(port), ctx.upstream.url], baseEnv(), opts);
    return { url: `http://127.0.0.1:${port}${REQUEST_PATH}`, port, proc, stop: stopper(proc) };
  },
};

/**
 * "Defaults" = what the auto-instrumentations README tells a user to do: load the register entry
 * and point OTEL_EXPORTER_OTLP_ENDPOINT at a collector (plus a service name). Everything else is
 * the SDK's default: all default-enabled instrumentations, all resource detectors, sampler
 * parentbased_always_on, traces/metrics/logs via OTLP http/protobuf (metrics every 60 s).
 */
const fastifyProxyOtel: TargetDef = {
  id: 3,
  name: 'fastify + http-proxy + OTel auto',
  exports: true,
  async start(ctx, key, opts = {}) {
    const port = await freePort();
    const env = { ...baseEnv(), OTEL_SERVICE_NAME: 'fastify-proxy', OTEL_EXPORTER_OTLP_ENDPOINT: `${ctx.sinkUrl}/${key}` };
    const args = ['--import', '@opentelemetry/auto-instrumentations-node/register', join(ctx.benchDir, 'targets/fastify-proxy.ts'), String(port), ctx.upstream.url];
    const proc = await nodeTarget('fastify-proxy+otel', ctx, port, args, env, opts);
    return { url: `http://127.0.0.1:${port}${REQUEST_PATH}`, port, proc, sinkKey: key, stop: stopper(proc) };
  },
};

/**
 * The gateway, started exactly like production. The access log goes to a file in the run's temp
 * directory (a real file write per request, as in production; /dev/null would hide the write
 * cost). Both gateway targets export to the sink; only the sampler differs.
 */
function gateway(id: number, name: string, sampler: string, workers = 1): TargetDef {
  return {
    id,
    name,
    exports: true,
    async start(ctx, key, opts = {}) {
      const port = await freePort();
      const dir = join(ctx.tmp, key);
      mkdirSync(dir, { recursive: true });
      const logFile = join(dir, 'access.log');
      const config = {
        workers,
        listen: { host: '127.0.0.1', port },
        logging: { level: 'info', file: logFile },
        upstreams: { nginx: { url: ctx.upstream.url } },
        routes: [{ name: 'api', prefix: '/api', upstream: 'nginx' }],
      };
      const configFile = join(dir, 'gateway.json');
      writeFileSync(configFile, JSON.stringify(config, null, 2));
      const env = { ...baseEnv(), OTEL_TRACES_SAMPLER: sampler, OTEL_EXPORTER_OTLP_ENDPOINT: `${ctx.sinkUrl}/${key}` };
      // The production command line (README): a 16 MB young-generation semi-space bounds RSS.
      const args = ['--max-semi-space-size=16', '--no-allocation-site-pretenuring', '--import', './dist/src/telemetry/register.js', 'dist/src/main.js', '--config', configFile];
      const proc = await nodeTarget(`gateway (${sampler})`, ctx, port, args, env, opts);
      return { url: `http://127.0.0.1:${port}${REQUEST_PATH}`, port, proc, sinkKey: key, logFile, stop: stopper(proc) };
    },
  };
}

export const TARGETS: TargetDef[] = [
  direct,
  fastifyProxy,
  fastifyProxyOtel,
  gateway(4, 'gateway, tracing off', 'always_off'),
  gateway(5, 'gateway, fully traced', 'always_on'),
  // The same with two proxy threads sharing the port (README "Proxy threads"): one process, so its
  // CPU and RSS are measured as for target 5.
  gateway(6, 'gateway, fully traced, 2 threads', 'always_on', 2),
];
