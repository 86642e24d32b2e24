import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig, RouteConfig } from '../config/schema.js';
import { currentRequest } from '../context/request-context.js';
import { writeJsonError } from './errors.js';
import { UpstreamExchange, type ExchangeDeps } from './exchange.js';
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
    new UpstreamExchange(ctx, route, upstream, request.raw, reply.raw, deps).start();
  };
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
