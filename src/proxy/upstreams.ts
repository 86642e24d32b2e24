import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import { CircuitBreaker, type CircuitState } from './circuit-breaker.js';

export type CircuitChangeListener = (upstream: string, from: CircuitState, to: CircuitState, failures: number) => void;

/** One configured upstream: a keep-alive connection pool and where requests go on it. */
export class Upstream {
  readonly name: string;
  readonly pool: Pool;
  readonly origin: string;
  /** Path of the configured URL without a trailing slash ("" for the root). */
  readonly basePath: string;
  readonly hostname: string;
  readonly port: number;
  readonly healthPath: string | undefined;
  readonly breaker: CircuitBreaker;

  constructor(name: string, config: UpstreamConfig, onCircuitChange: CircuitChangeListener) {
    const url = new URL(config.url);
    this.name = name;
    this.origin = url.origin;
    this.basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
    this.hostname = url.hostname.replace(/^\[|\]$/g, '');
    this.port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
    this.healthPath = config.healthPath;
    const { failureThreshold, cooldownMs } = config.circuitBreaker;
    this.breaker = new CircuitBreaker(failureThreshold, cooldownMs, (from, to, failures) => onCircuitChange(name, from, to, failures));
    this.pool = new Pool(url.origin, {
      connections: config.connections,
      pipelining: 1,
      keepAliveTimeout: config.keepAliveTimeoutMs,
      connect: { timeout: config.connectTimeoutMs },
    });
  }
}

export function createUpstreams(configs: Record<string, UpstreamConfig>, onCircuitChange: CircuitChangeListener): Map<string, Upstream> {
  const upstreams = new Map<string, Upstream>();
  for (const [name, config] of Object.entries(configs)) upstreams.set(name, new Upstream(name, config, onCircuitChange));
  return upstreams;
}

export async function closeUpstreams(upstreams: Map<string, Upstream>): Promise<void> {
  await Promise.all([...upstreams.values()].map((u) => u.pool.close()));
}
