import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { GatewayConfig, RouteConfig } from '../config/schema.js';
import type { Attributes } from '@opentelemetry/api';
import type { RequestContext } from '../context/request-context.js';
import { writeJsonError } from './errors.js';
import { traceResponseHeaders } from './headers.js';
import { RetryBudget } from './circuit-breaker.js';
import { UpstreamExchange, type ExchangeDeps, type RouteRuntime } from './exchange.js';
import type { Upstream } from './upstreams.js';

/** The http.route value of a configured route: one template per route keeps metric series bounded. */
export function routeTemplate(route: RouteConfig): string {
  return route.prefix === '/' ? '/*' : `${route.prefix}/*`;
}

/** A configured route, ready to serve: matched by the edge before any framework routing. */
export interface ProxyRoute {
  readonly prefix: string;
  /** http.route, gateway.route and gateway.upstream, set on the SERVER span at its start. */
  readonly spanAttributes: Attributes;
  /** `<METHOD> <route template>`, the SERVER span name. */
  spanName(method: string): string;
  handle(ctx: RequestContext, req: IncomingMessage, res: ServerResponse): void;
}

function proxyRoute(route: RouteConfig, upstream: Upstream, deps: ExchangeDeps): ProxyRoute {
  const template = routeTemplate(route);
  const runtime: RouteRuntime = {
    config: route,
    upstream,
    budget: new RetryBudget(route.retries.budgetPercent),
    retryStatuses: new Set(route.retries.attempts > 0 ? route.retries.onStatus : []),
  };
  const maxBody = route.maxBodyBytes;
  const allowed = new Set<string>(route.methods);
  const allowHeader = route.methods.join(', ');
  const spanName = new Map<string, string>();
  const spanAttributes = { 'http.route': template, 'gateway.route': route.name, 'gateway.upstream': upstream.name };

  function handle(ctx: RequestContext, req: IncomingMessage, res: ServerResponse): void {
    ctx.route = route;
    ctx.routeTemplate = template;
    if (!allowed.has(req.method!)) {
      writeJsonError(
        res,
        405,
        { error: 'method_not_allowed', message: `${req.method} is not allowed on route "${route.name}" (allowed: ${allowHeader})`, traceId: ctx.traceId, requestId: ctx.requestId },
        ['allow', allowHeader, ...traceResponseHeaders(ctx)],
      );
      return;
    }
    const body = limitedBody(req, maxBody);
    if (body === undefined) {
      writeJsonError(
        res,
        413,
        { error: 'payload_too_large', message: `request body exceeds the route's limit of ${maxBody} bytes`, traceId: ctx.traceId, requestId: ctx.requestId },
        ['connection', 'close', ...traceResponseHeaders(ctx)],
      );
      return;
    }
    new UpstreamExchange(ctx, runtime, req, res, deps, body).start();
  }
  return {
    prefix: route.prefix,
    spanAttributes,
    spanName(method: string): string {
      let name = spanName.get(method);
      if (name === undefined) spanName.set(method, (name = `${method} ${template}`));
      return name;
    },
    handle,
  };
}

/** Counts a chunked body as it streams and fails it at the limit, so it is never read past it. */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) done(Object.assign(new Error(`request body exceeds ${this.max} bytes`), { code: 'GATEWAY_BODY_TOO_LARGE' }));
    else done(null, chunk);
  }
}

/**
 * The body to forward, or undefined when a declared Content-Length is already over the limit
 * (refused before anything goes upstream).
 */
function limitedBody(req: IncomingMessage, max: number | undefined): Readable | null | undefined {
  if (max === undefined) return null;
  const declared = req.headers['content-length'];
  if (declared !== undefined) return Number(declared) <= max ? null : undefined;
  if (req.headers['transfer-encoding'] === undefined) return null;
  const limit = new BodyLimit(max);
  req.on('error', (err) => limit.destroy(err));
  return req.pipe(limit);
}

/**
 * Longest-prefix matching over the configured routes, on whole path segments. Routes are few and
 * prefixes plain strings, so a sorted scan beats a general router on the per-request path.
 */
export class RouteTable {
  private readonly routes: ProxyRoute[];

  constructor(config: GatewayConfig, upstreams: Map<string, Upstream>, deps: ExchangeDeps) {
    this.routes = config.routes
      .map((r) => proxyRoute(r, upstreams.get(r.upstream)!, deps))
      .sort((a, b) => b.prefix.length - a.prefix.length);
  }

  match(path: string): ProxyRoute | undefined {
    for (const route of this.routes) {
      const p = route.prefix;
      if (p === '/') return route;
      if (path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47 /* / */)) return route;
    }
    return undefined;
  }
}
