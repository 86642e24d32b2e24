import type { IncomingMessage } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig, RouteConfig } from '../config/schema.js';
import { currentRequest } from '../context/request-context.js';
import { writeJsonError } from './errors.js';
import { RetryBudget } from './circuit-breaker.js';
import { UpstreamExchange, type ExchangeDeps, type RouteRuntime } from './exchange.js';
import type { Upstream } from './upstreams.js';

export interface ProxyRoutesOptions extends ExchangeDeps {
  config: GatewayConfig;
  upstreams: Map<string, Upstream>;
}

/** The http.route value of a configured route: one template per route keeps metric series bounded. */
export function routeTemplate(route: RouteConfig): string {
  return route.prefix === '/' ? '/*' : `${route.prefix}/*`;
}

function routeHandler(route: RouteConfig, upstream: Upstream, deps: ExchangeDeps) {
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

  return function proxy(request: FastifyRequest, reply: FastifyReply): void {
    const ctx = currentRequest()!;
    ctx.route = route;
    ctx.routeTemplate = template;
    let name = spanName.get(ctx.method);
    if (name === undefined) spanName.set(ctx.method, (name = `${ctx.method} ${template}`));
    ctx.span.updateName(name);
    ctx.span.setAttributes({ 'http.route': template, 'gateway.route': route.name, 'gateway.upstream': upstream.name });
    reply.hijack();
    if (!allowed.has(request.raw.method!)) {
      writeJsonError(
        reply.raw,
        405,
        { error: 'method_not_allowed', message: `${request.raw.method} is not allowed on route "${route.name}" (allowed: ${allowHeader})`, traceId: ctx.traceId, requestId: ctx.requestId },
        { allow: allowHeader },
      );
      return;
    }
    const body = limitedBody(request.raw, maxBody);
    if (body === undefined) {
      writeJsonError(
        reply.raw,
        413,
        { error: 'payload_too_large', message: `request body exceeds the route's limit of ${maxBody} bytes`, traceId: ctx.traceId, requestId: ctx.requestId },
        { connection: 'close' },
      );
      return;
    }
    new UpstreamExchange(ctx, runtime, request.raw, reply.raw, deps, body).start();
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

/** Registers every configured route as `<prefix>` and `<prefix>/*` for all methods. */
export async function proxyRoutes(app: FastifyInstance, opts: ProxyRoutesOptions): Promise<void> {
  // Bodies are streamed to the upstream untouched: no parsing, no buffering.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  for (const route of opts.config.routes) {
    const upstream = opts.upstreams.get(route.upstream)!;
    const handler = routeHandler(route, upstream, opts);
    if (route.prefix !== '/') app.all(route.prefix, handler);
    app.all(route.prefix === '/' ? '/*' : `${route.prefix}/*`, handler);
  }
}
