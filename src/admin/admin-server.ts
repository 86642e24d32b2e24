import Fastify from 'fastify';
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import { TraceLookup, type SpanSource } from '../lookup/service.js';
import type { StoreLimits } from '../lookup/store.js';
import { TempoClient } from '../lookup/tempo.js';
import { VERSION } from '../server.js';
import type { Telemetry } from '../telemetry/sdk.js';
import { healthRoutes, type HealthSource } from './health.js';
import { lookupRoutes } from './lookup.js';
import { metricsRoute, type MetricsText } from './metrics.js';

export interface AdminServerOptions {
  config: GatewayConfig;
  logger: Logger;
  telemetry: Telemetry;
  health: HealthSource;
  env?: NodeJS.ProcessEnv;
  /**
   * With several proxy threads: their spans, their metrics merged. The stores are theirs, so this
   * thread's own store stays off.
   */
  spans?: SpanSource;
  metricsText?: MetricsText;
}

export interface AdminServer {
  /** e.g. http://127.0.0.1:9901 */
  url: string;
  close(): Promise<void>;
}

const MIN_TOKEN_LENGTH = 16;
const STORE_OFF = { maxSpans: 0, maxBytes: 0 };

/** GATEWAY_ADMIN_TOKEN wins over admin.token, so the secret can stay out of the config file. */
function resolveToken(configured: string | undefined, env: NodeJS.ProcessEnv): { token?: string; problem: string } {
  const fromEnv = env.GATEWAY_ADMIN_TOKEN?.trim();
  if (fromEnv) {
    return fromEnv.length >= MIN_TOKEN_LENGTH ? { token: fromEnv, problem: '' } : { problem: `GATEWAY_ADMIN_TOKEN is shorter than ${MIN_TOKEN_LENGTH} characters` };
  }
  return configured ? { token: configured, problem: '' } : { problem: 'no admin token is configured (set admin.token or GATEWAY_ADMIN_TOKEN)' };
}

/**
 * The embedded span store's limits: the configured ones when the lookup API is on (an admin block
 * with a token), none otherwise. Shared out evenly when several proxy threads each keep a store.
 */
export function storeLimitsFor(config: GatewayConfig, env: NodeJS.ProcessEnv, threads = 1): StoreLimits {
  if (!config.admin || !resolveToken(config.admin.token, env).token) return STORE_OFF;
  const { maxSpans, maxBytes } = config.admin.store;
  return { maxSpans: Math.ceil(maxSpans / threads), maxBytes: Math.ceil(maxBytes / threads) };
}

/**
 * Starts the admin listener (trace lookup API and page, optionally /metrics and /health) when
 * the config has an `admin` block. Without one, or without a token, the span store is switched
 * off so it costs nothing. Resolves undefined when there is no admin listener. Never logs the token.
 */
export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer | undefined> {
  const { config, logger, telemetry } = opts;
  const env = opts.env ?? process.env;
  const admin = config.admin;
  const own = telemetry.traceStore;
  if (!admin) {
    own.configure(STORE_OFF);
    logger.info(
      env.GATEWAY_ADMIN_TOKEN ? 'admin listener off: GATEWAY_ADMIN_TOKEN is set but the config has no "admin" block' : 'admin listener off: no "admin" block in the config, so trace lookup is unavailable',
    );
    return undefined;
  }

  const { token, problem } = resolveToken(admin.token, env);
  own.configure(opts.spans === undefined ? storeLimitsFor(config, env) : STORE_OFF);
  const store = opts.spans ?? own;
  const tempo = admin.tempoUrl ? new TempoClient({ url: admin.tempoUrl, timeoutMs: admin.tempoTimeoutMs, searchHours: admin.tempoSearchHours }) : undefined;
  const grafana = admin.grafanaUrl ? { url: admin.grafanaUrl, datasourceUid: admin.grafanaTempoDatasourceUid } : undefined;
  const lookup = new TraceLookup({ store, tempo, grafana });

  const app = Fastify({ logger: false, routerOptions: { maxParamLength: 512 } });
  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).send({ error: 'not_found', message: 'No such admin endpoint; the trace lookup page is at /admin/.' });
  });
  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error({ err: error }, 'admin request failed inside the gateway');
    // Never a stack trace in a response.
    void reply.code(status).send({ error: status === 500 ? 'internal_error' : 'bad_request', message: status === 500 ? 'The admin request failed inside the gateway.' : error.message });
  });
  await app.register(lookupRoutes, { lookup, token, disabledReason: problem, logger });
  if (admin.metricsAndHealth) {
    await app.register(metricsRoute, { text: opts.metricsText ?? telemetry.metricsText });
    await app.register(healthRoutes, { monitor: opts.health, version: VERSION, startedAt: Date.now() });
  }

  try {
    await app.listen({ host: admin.host, port: admin.port });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`cannot listen on ${admin.host}:${admin.port} (admin listener): ${e.code ?? e.message}`);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : admin.port;
  const host = admin.host.includes(':') ? `[${admin.host}]` : admin.host;
  const url = `http://${host}:${port}`;
  const fields = { address: `${admin.host}:${port}`, page: `${url}/admin/`, metrics_and_health: admin.metricsAndHealth };
  if (token) {
    const source = tempo ? `tempo ${tempo.url}` : `embedded store (${admin.store.maxSpans} spans, ${Math.round(admin.store.maxBytes / 1048576)} MiB)`;
    logger.info({ ...fields, trace_lookup: 'enabled', lookup_source: source }, 'admin listening: trace lookup enabled');
  } else {
    logger.warn({ ...fields, trace_lookup: 'disabled' }, `admin listening: trace lookup DISABLED, ${problem}`);
  }
  return { url, close: () => app.close() };
}
