#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startTelemetry } from './telemetry/sdk.js';
import type { AdminServer } from './admin/admin-server.js';

// `tracing-gateway trace <id> …` is the support CLI, a client of the admin API: it exits here,
// before the SDK or the gateway starts.
if (process.argv[2] === 'trace') {
  const { runTraceCommand } = await import('./cli/trace.js');
  process.exit(await runTraceCommand(process.argv.slice(3)));
}

// The SDK must exist before the gateway's modules ask for tracers and meters; with
// `node --import .../telemetry/register.js` it already does and this is a no-op.
const telemetry = startTelemetry();

const { loadConfig, ConfigError } = await import('./config/load.js');
const { createLogger } = await import('./logging/logger.js');
const { buildGateway } = await import('./server.js');
const { createDemoUpstream } = await import('./demo/upstream.js');

const DEMO_CONFIG = fileURLToPath(new URL('../../examples/gateway.yaml', import.meta.url));
const DEMO_UPSTREAM_PORT = 9091;

function fail(message: string): never {
  process.stderr.write(`tracing-gateway: ${message}\n`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({
    options: {
      config: { type: 'string', short: 'c' },
      demo: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  fail(`${(err as Error).message} (try --help)`);
}
if (args.help) {
  process.stdout.write(
    'usage: tracing-gateway [--config FILE] [--demo]\n' +
      '  --config FILE  gateway configuration (YAML or JSON); or set GATEWAY_CONFIG\n' +
      `  --demo         also start a demo upstream on 127.0.0.1:${DEMO_UPSTREAM_PORT}; without --config uses examples/gateway.yaml\n`,
  );
  process.exit(0);
}

const file = args.config ?? process.env.GATEWAY_CONFIG ?? (args.demo ? DEMO_CONFIG : undefined);
if (!file) fail('no configuration: pass --config FILE or set GATEWAY_CONFIG (or try --demo)');
if (!existsSync(file)) fail(`${file}: cannot read file (ENOENT)`);

let config;
try {
  config = loadConfig(file);
} catch (err) {
  if (err instanceof ConfigError) fail(`config error: ${err.message}`);
  throw err;
}

const logger = createLogger(config.logging);
telemetry.setLogger(logger);
const demo = args.demo ? createDemoUpstream() : undefined;
if (demo) await new Promise<void>((resolve) => demo.listen(DEMO_UPSTREAM_PORT, '127.0.0.1', resolve));

const threads = config.workers === 'auto' ? availableParallelism() : config.workers;
const { startAdminServer } = await import('./admin/admin-server.js');
let gateway: { close(): Promise<void>; flushAccessLog(): void };
let address;
let admin: AdminServer | undefined;
if (threads === 1) {
  const single = buildGateway(config, logger);
  gateway = single;
  try {
    address = await single.listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    fail(`cannot listen on ${config.listen.host}:${config.listen.port}: ${e.code ?? e.message}`);
  }
  // The admin listener (trace lookup), when the config has an `admin` block.
  admin = await startAdminServer({ config, logger, telemetry, health: single.health }).catch((err: Error) => fail(err.message));
} else {
  // The proxy runs on `threads` threads sharing the port; this thread supervises them and
  // serves the admin listener for all of them.
  const { ProxyThreads } = await import('./workers/proxy-threads.js');
  const pool = new ProxyThreads(config, logger, threads);
  gateway = { close: () => pool.stop(), flushAccessLog: () => undefined };
  address = await pool.start().catch(async (err: Error) => {
    await pool.stop();
    return fail(err.message);
  });
  admin = await startAdminServer({ config, logger, telemetry, health: pool, spans: pool, metricsText: pool.metricsText }).catch((err: Error) => fail(err.message));
}
logger.info(
  {
    address: `${address.host}:${address.port}`,
    config: file,
    workers: threads,
    routes: config.routes.map((r) => `${r.prefix} → ${r.upstream}`),
    span_export: telemetry.exportTarget,
    demo_upstream: demo ? `127.0.0.1:${DEMO_UPSTREAM_PORT}` : undefined,
  },
  'gateway listening',
);

for (const warning of telemetry.warnings) logger.warn(warning);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) {
    logger.warn({ signal }, 'second signal: exiting at once');
    gateway.flushAccessLog();
    logger.flush();
    process.exit(1);
  }
  stopping = true;
  logger.info({ signal, grace_ms: config!.shutdown.graceMs }, 'shutting down: draining in-flight requests');
  try {
    await gateway.close();
    demo?.close();
    await admin?.close();
    await telemetry.shutdown();
    logger.info('shutdown complete: spans flushed');
  } catch (err) {
    logger.error({ err }, 'shutdown did not complete cleanly');
    process.exitCode = 1;
  }
  logger.flush(() => process.exit());
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
