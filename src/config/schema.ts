import { z } from 'zod';

/** Paths the gateway answers itself; no route may claim them. */
export const RESERVED_PREFIXES = ['/metrics', '/health'] as const;

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const durationMs = z.number().int().positive().max(3_600_000);

const upstreamSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  connections: z.number().int().positive().max(10_000).default(128),
  connectTimeoutMs: durationMs.default(5_000),
  keepAliveTimeoutMs: durationMs.default(4_000),
  healthPath: z.string().startsWith('/', 'must start with "/"').optional(),
  /** After `failureThreshold` consecutive failures, answer 503 at once for `cooldownMs`, then let one trial through. */
  circuitBreaker: z
    .strictObject({
      failureThreshold: z.number().int().min(1).max(1_000).default(5),
      cooldownMs: durationMs.default(10_000),
    })
    .prefault({}),
});

const routeSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_.-]'),
  prefix: z
    .string()
    .startsWith('/', 'must start with "/"')
    .regex(/^\/[A-Za-z0-9_.~\-/]*$/, 'may only contain [A-Za-z0-9_.~-/]')
    .refine((p) => p === '/' || !p.endsWith('/'), 'must not end with "/" (except the root prefix "/")')
    .refine((p) => !p.includes('//'), 'must not contain "//"'),
  upstream: z.string(),
  stripPrefix: z.boolean().default(false),
  methods: z.array(z.enum(HTTP_METHODS)).nonempty().default([...HTTP_METHODS]),
  timeoutMs: durationMs.default(30_000),
  /** Largest request body accepted (413 above it); unset means no limit. */
  maxBodyBytes: z.number().int().positive().optional(),
  retries: z
    .strictObject({
      /** Extra tries after the first, for idempotent requests without a body only. */
      attempts: z.number().int().min(0).max(5).default(0),
      /** Failures that are retried: connect errors, resets before any response, and these upstream statuses. */
      onStatus: z.array(z.number().int().min(500).max(599)).default([502, 503, 504]),
      /** Retry budget: retries may add at most this percentage of the route's requests (plus a small burst). */
      budgetPercent: z.number().min(0).max(100).default(20),
    })
    .prefault({}),
});

/** Threads serving the proxy port; "auto" is one per core the process may use. */
const WORKERS = { error: 'must be a whole number from 1 to 64, or "auto"' };
export const workersSchema = z.union([z.number(WORKERS).int(WORKERS).min(1, WORKERS).max(64, WORKERS), z.literal('auto', WORKERS)], WORKERS);

export const configSchema = z
  .strictObject({
    /**
     * Proxy threads sharing the listen port (the kernel spreads connections over them, SO_REUSEPORT).
     * 1: the proxy runs on the main thread. More: the main thread supervises them and serves the
     * admin listener; /metrics and trace lookup cover all of them.
     */
    workers: workersSchema.default(1),
    listen: z
      .strictObject({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65_535).default(8080),
        /** Serve /metrics and /health* on the proxy port too (false: only on the admin listener). */
        metricsAndHealth: z.boolean().default(true),
      })
      .prefault({}),
    server: z
      .strictObject({
        /** Time a client has to send its request headers (slowloris protection). */
        headersTimeoutMs: durationMs.default(10_000),
        /** Time a client has to send the whole request. */
        requestTimeoutMs: durationMs.default(60_000),
        keepAliveTimeoutMs: durationMs.default(5_000),
        /** More request header lines than this are answered 431. */
        maxHeaderCount: z.number().int().min(10).max(1_000).default(100),
        /** Total request header bytes; larger headers are answered 431. */
        maxHeaderBytes: z.number().int().min(1_024).max(1_048_576).default(16_384),
      })
      .prefault({}),
    tracing: z
      .strictObject({
        /** Continue the caller's trace (true) or start a new one linked to it (false, edge distrust). */
        trustInboundContext: z.boolean().default(true),
        /** Query parameters whose values are replaced by REDACTED in url.query and logs. */
        redactQueryParams: z
          .array(z.string().min(1))
          .default(['token', 'access_token', 'api_key', 'apikey', 'key', 'password', 'secret', 'signature', 'sig', 'X-Amz-Signature', 'X-Goog-Signature', 'AWSAccessKeyId']),
      })
      .prefault({}),
    logging: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /** Write JSON lines to this file instead of stdout. */
        file: z.string().min(1).optional(),
        /** Extra pino redaction paths (e.g. "headers.x-api-key"). */
        redact: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
    health: z
      .strictObject({
        /** How often upstream readiness is checked; /health/ready serves the cached result. */
        intervalMs: durationMs.default(5_000),
        timeoutMs: durationMs.default(2_000),
      })
      .prefault({}),
    shutdown: z
      .strictObject({
        /** How long in-flight requests may take to finish after SIGTERM. */
        graceMs: durationMs.default(10_000),
      })
      .prefault({}),
    /** Admin listener for support-staff trace lookup (API, page, CLI backend). Absent: no admin listener. */
    admin: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65_535).default(9901),
        /** Bearer token for the lookup API; GATEWAY_ADMIN_TOKEN overrides. Without one the lookup is disabled. */
        token: z.string().min(16, 'must be at least 16 characters').optional(),
        /** Tempo's HTTP API (e.g. http://tempo:3200). Absent: the gateway's own recent spans are used. */
        tempoUrl: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
        tempoTimeoutMs: durationMs.default(5_000),
        /** How far back a request-ID search in Tempo looks. */
        tempoSearchHours: z.number().int().positive().max(720).default(24),
        /** Grafana base URL; when set, summaries carry an Explore link to the trace. */
        grafanaUrl: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
        grafanaTempoDatasourceUid: z.string().min(1).default('tempo'),
        /** The embedded store of this gateway's recent spans; oldest evicted first. */
        store: z
          .strictObject({
            maxSpans: z.number().int().min(0).max(1_000_000).default(20_000),
            maxBytes: z.number().int().min(0).max(4_294_967_295).default(33_554_432),
          })
          .prefault({}),
        /** Also serve /metrics and /health* here (they stay on the proxy port too). */
        metricsAndHealth: z.boolean().default(false),
      })
      .optional(),
    upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'upstream names must be 1-64 characters of [A-Za-z0-9_.-]'), upstreamSchema),
    routes: z.array(routeSchema).min(1, 'at least one route is required'),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.server.headersTimeoutMs > cfg.server.requestTimeoutMs) {
      ctx.addIssue({ code: 'custom', path: ['server', 'headersTimeoutMs'], message: `must not exceed server.requestTimeoutMs (${cfg.server.requestTimeoutMs})` });
    }
    const names = new Set<string>();
    const prefixes = new Set<string>();
    cfg.routes.forEach((route, i) => {
      if (!(route.upstream in cfg.upstreams)) {
        const known = Object.keys(cfg.upstreams).join(', ') || 'none';
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'upstream'], message: `unknown upstream "${route.upstream}" (defined: ${known})` });
      }
      if (names.has(route.name)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `duplicate route name "${route.name}"` });
      if (prefixes.has(route.prefix)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'prefix'], message: `duplicate prefix "${route.prefix}"` });
      const reserved = RESERVED_PREFIXES.find((r) => route.prefix === r || route.prefix.startsWith(`${r}/`));
      if (reserved) ctx.addIssue({ code: 'custom', path: ['routes', i, 'prefix'], message: `"${route.prefix}" collides with the gateway's reserved path ${reserved}` });
      names.add(route.name);
      prefixes.add(route.prefix);
    });
  });

export type GatewayConfig = z.infer<typeof configSchema>;
export type RouteConfig = GatewayConfig['routes'][number];
export type UpstreamConfig = GatewayConfig['upstreams'][string];
