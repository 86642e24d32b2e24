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
});

export const configSchema = z
  .strictObject({
    listen: z
      .strictObject({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65_535).default(8080),
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
    upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'upstream names must be 1-64 characters of [A-Za-z0-9_.-]'), upstreamSchema),
    routes: z.array(routeSchema).min(1, 'at least one route is required'),
  })
  .superRefine((cfg, ctx) => {
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
