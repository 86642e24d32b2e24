import { connect } from 'node:net';
import { metrics } from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';
import { CIRCUIT_STATE_VALUE, type CircuitState } from '../proxy/circuit-breaker.js';
import type { Upstream } from '../proxy/upstreams.js';

export interface UpstreamHealth {
  status: 'up' | 'down' | 'unknown';
  checkedAt: string | null;
  detail: string;
}

function tcpCheck(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)));
    socket.once('connect', () => {
      socket.destroy();
      resolve('tcp connect ok');
    });
    socket.once('error', reject);
  });
}

async function httpCheck(upstream: Upstream, path: string, timeoutMs: number): Promise<string> {
  const res = await upstream.pool.request({ path, method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs, headers: { 'user-agent': 'tracing-gateway-health' } });
  await res.body.dump();
  if (res.statusCode >= 500) throw new Error(`GET ${path} answered ${res.statusCode}`);
  return `GET ${path} answered ${res.statusCode}`;
}

/**
 * Checks every upstream on a timer and keeps the result, so readiness probes read a cached
 * answer instead of sending traffic upstream on every probe.
 */
export class HealthMonitor {
  private readonly state = new Map<string, UpstreamHealth>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly upstreams: Map<string, Upstream>,
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
  ) {
    for (const name of upstreams.keys()) this.state.set(name, { status: 'unknown', checkedAt: null, detail: 'not checked yet' });
    metrics
      .getMeter('tracing-gateway')
      .createObservableGauge('gateway.upstream.up', { description: 'Whether the last health check of an upstream succeeded (1) or not (0).' })
      .addCallback((result) => {
        for (const [name, health] of this.state) result.observe(health.status === 'up' ? 1 : 0, { 'gateway.upstream': name });
      });
    metrics
      .getMeter('tracing-gateway')
      .createObservableGauge('gateway.upstream.circuit_state', { description: 'Circuit breaker state per upstream: 0 closed, 1 open, 2 half-open.' })
      .addCallback((result) => {
        for (const upstream of this.upstreams.values()) result.observe(CIRCUIT_STATE_VALUE[upstream.breaker.state], { 'gateway.upstream': upstream.name });
      });
  }

  start(): Promise<void> {
    this.timer = setInterval(() => void this.checkAll(), this.intervalMs);
    this.timer.unref();
    return this.checkAll();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  checkAll(): Promise<void> {
    this.running ??= Promise.all([...this.upstreams.values()].map((u) => this.check(u))).then(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async check(upstream: Upstream): Promise<void> {
    let health: UpstreamHealth;
    try {
      const detail = upstream.healthPath
        ? await httpCheck(upstream, upstream.healthPath, this.timeoutMs)
        : await tcpCheck(upstream.hostname, upstream.port, this.timeoutMs);
      health = { status: 'up', checkedAt: new Date().toISOString(), detail };
    } catch (err) {
      const e = err as Error & { code?: string };
      health = { status: 'down', checkedAt: new Date().toISOString(), detail: e.code ? `${e.code}: ${e.message}` : e.message };
    }
    this.state.set(upstream.name, health);
  }

  /** Ready when every upstream passed its last check and no circuit is open. */
  snapshot(): HealthSnapshot {
    let ready = true;
    const upstreams: Record<string, UpstreamHealth & { circuit: CircuitState }> = {};
    for (const [name, health] of this.state) {
      const circuit = this.upstreams.get(name)!.breaker.state;
      if (health.status !== 'up' || circuit === 'open') ready = false;
      upstreams[name] = { ...health, circuit };
    }
    return { ready, upstreams };
  }
}

export interface HealthSnapshot {
  ready: boolean;
  upstreams: Record<string, UpstreamHealth & { circuit: CircuitState }>;
}

/** This thread's monitor, or one that combines every proxy thread's. */
export interface HealthSource {
  snapshot(): HealthSnapshot | Promise<HealthSnapshot>;
}

export interface HealthRoutesOptions {
  monitor: HealthSource;
  version: string;
  startedAt: number;
}

/** GET /health, /health/live, /health/ready. Not traced and not access-logged, so probes do not flood either. */
export async function healthRoutes(app: FastifyInstance, opts: HealthRoutesOptions): Promise<void> {
  app.get('/health/live', async () => ({ status: 'ok' }));
  app.get('/health/ready', async (_req, reply) => {
    const { ready, upstreams } = await opts.monitor.snapshot();
    reply.code(ready ? 200 : 503).header('cache-control', 'no-store');
    return { status: ready ? 'ready' : 'not_ready', upstreams };
  });
  app.get('/health', async () => ({
    status: 'ok',
    version: opts.version,
    uptime_seconds: Math.round((Date.now() - opts.startedAt) / 1000),
  }));
}
