import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { SpanStatusCode } from '@opentelemetry/api';
import Fastify, { type FastifyInstance, type FastifyListenOptions } from 'fastify';
import { HealthMonitor, healthRoutes } from './admin/health.js';
import { metricsRoute, type MetricsText } from './admin/metrics.js';
import { RESERVED_PREFIXES, type GatewayConfig } from './config/schema.js';
import { RequestContext, currentRequest, requestStorage } from './context/request-context.js';
import { resolveRequestId } from './context/request-id.js';
import { AccessLog } from './logging/access-log.js';
import type { Logger } from './logging/logger.js';
import { writeJsonError } from './proxy/errors.js';
import { traceResponseHeaders } from './proxy/headers.js';
import { normalizePath } from './proxy/path.js';
import { RouteTable, type ProxyRoute } from './proxy/routes.js';
import { closeUpstreams, createUpstreams } from './proxy/upstreams.js';
import { GatewayInstruments } from './telemetry/instruments.js';
import { telemetry } from './telemetry/sdk.js';
import { normalizeMethod, redactQuery, startServerSpan } from './tracing/spans.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const kContext = Symbol('gateway.requestContext');
/** Paths are bounded by the header size limit already; log lines stay shorter still. */
const MAX_LOGGED_PATH = 1024;
type TracedResponse = ServerResponse & { [kContext]?: RequestContext };

function isReservedPath(path: string): boolean {
  for (const prefix of RESERVED_PREFIXES) {
    if (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)) return true;
  }
  return false;
}

const SHUTTING_DOWN = { status: 503, error: 'shutting_down', message: 'the gateway is shutting down; retry on another instance' };
const BAD_PATH = { status: 400, error: 'bad_path', message: 'encoded slashes and backslashes are not allowed in the path' };
const TOO_MANY_HEADERS = { status: 431, error: 'too_many_headers', message: 'the request has more header fields than the gateway accepts' };

export interface Gateway {
  app: FastifyInstance;
  server: Server;
  health: HealthMonitor;
  /** Resolves with the bound address once listening. */
  listen(): Promise<{ host: string; port: number }>;
  /** Stops accepting, lets in-flight requests finish (up to shutdown.graceMs), closes upstream pools. */
  close(): Promise<void>;
  /** Hands access-log lines still waiting for the end of the event-loop turn to the logger. */
  flushAccessLog(): void;
}

export interface GatewayOptions {
  /** What GET /metrics serves: by default this thread's metrics; with several proxy threads, all of them merged. */
  metricsText?: MetricsText;
  /** Share the listen port with the gateway's other proxy threads (SO_REUSEPORT). */
  reusePort?: boolean;
  /** Listen on this port instead of listen.port (the other proxy threads join the first one's port). */
  port?: number;
}

export function buildGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Gateway {
  const instruments = new GatewayInstruments();
  const accessLog = new AccessLog(logger);
  const upstreams = createUpstreams(config.upstreams, (upstream, from, to, failures) => {
    const line = { upstream, circuit_from: from, circuit_to: to, consecutive_failures: failures };
    if (to === 'open') logger.warn(line, `circuit for upstream "${upstream}" opened: answering 503 until a trial request succeeds`);
    else logger.info(line, `circuit for upstream "${upstream}" is ${to === 'closed' ? 'closed again' : 'half-open: letting one trial request through'}`);
  });
  const health = new HealthMonitor(upstreams, config.health.intervalMs, config.health.timeoutMs);
  const maxHeaderLines = config.server.maxHeaderCount * 2;
  const routes = new RouteTable(config, upstreams, { logger, instruments });
  const sensitiveQuery = new Set(config.tracing.redactQueryParams.map((p) => p.toLowerCase()));
  const trustInbound = config.tracing.trustInboundContext;
  let closing = false;

  /** Runs when the response is done or the connection dropped: metrics, span end, access log. */
  function onResponseClose(this: TracedResponse): void {
    const ctx = this[kContext];
    if (ctx === undefined) return;
    this[kContext] = undefined;
    const completed = this.writableFinished;
    if (!completed) ctx.exchange?.abortByClient();
    // 499: nginx's convention for "client closed the connection before the response was complete".
    const status = completed ? this.statusCode : 499;
    const durationMs = performance.now() - ctx.startTime;
    instruments.activeRequests--;
    instruments.serverSeries(ctx.method, ctx.routeTemplate, status).record(durationMs / 1000);

    const span = ctx.span;
    if (completed) span.setAttribute('http.response.status_code', status);
    else span.setAttribute('gateway.client_aborted', true);
    if (status >= 500 && ctx.errorType === undefined && completed) {
      span.setAttribute('error.type', String(status));
      span.setStatus({ code: SpanStatusCode.ERROR, message: `answered ${status}` });
    }
    span.end();

    accessLog.write({
      log: ctx.log,
      method: ctx.method,
      path: ctx.path.length > MAX_LOGGED_PATH ? `${ctx.path.slice(0, MAX_LOGGED_PATH)}…` : ctx.path,
      route: ctx.route?.name,
      status,
      duration_ms: Math.round(durationMs * 1000) / 1000,
      upstream: ctx.route?.upstream,
      upstream_status: ctx.upstreamStatus || undefined,
      error_type: ctx.errorType,
      bytes_in: ctx.bytesIn,
      bytes_out: ctx.bytesOut,
      client_address: ctx.clientAddress,
      sampled: ctx.sampled,
    });
  }

  /** A bug in the proxy path must still end in a JSON 500 with the trace ID, never a hung socket. */
  function proxyOrFail(route: ProxyRoute, ctx: RequestContext, req: IncomingMessage, res: ServerResponse): void {
    try {
      route.handle(ctx, req, res);
    } catch (err) {
      logger.error({ err }, 'request failed inside the gateway');
      if (res.headersSent) res.destroy(err as Error);
      else writeJsonError(res, 500, { error: 'internal_error', message: 'the gateway failed to handle the request', traceId: ctx.traceId, requestId: ctx.requestId }, traceResponseHeaders(ctx));
    }
  }

  const app = Fastify({
    logger: false,
    requestIdHeader: false,
    exposeHeadRoutes: false,
    return503OnClosing: false,
    routerOptions: { maxParamLength: 8192, ignoreDuplicateSlashes: false },
    serverFactory: (fastifyHandler) => {
      /** The edge: every non-reserved request gets its IDs, server span and context here, before routing. */
      const serverOptions = {
        maxHeaderSize: config.server.maxHeaderBytes,
        headersTimeout: config.server.headersTimeoutMs,
        requestTimeout: config.server.requestTimeoutMs,
        keepAliveTimeout: config.server.keepAliveTimeoutMs,
        // How often Node checks the header/request timeouts (default 30 s would let slow clients linger).
        connectionsCheckingInterval: Math.min(1_000, config.server.headersTimeoutMs),
      };
      return createServer(serverOptions, (req: IncomingMessage, res: TracedResponse) => {
        let url = req.url ?? '/';
        const q = url.indexOf('?');
        let path = q === -1 ? url : url.slice(0, q);
        // Route matching (and prefix stripping) sees the normalised path only.
        const normalized = normalizePath(path);
        if (normalized !== null && normalized !== path) {
          url = q === -1 ? normalized : normalized + url.slice(q);
          req.url = url;
          path = normalized;
        }
        if (isReservedPath(path)) {
          fastifyHandler(req, res);
          return;
        }
        const requestId = resolveRequestId(req.headers['x-request-id']);
        const method = normalizeMethod(req.method);
        const query = q === -1 ? undefined : redactQuery(url.slice(q + 1), sensitiveQuery);
        const route = routes.match(path);
        const { span, context, traceFlags } = startServerSpan({
          req,
          method,
          path,
          query,
          requestId,
          trustInbound,
          name: route === undefined ? method : route.spanName(method),
          routeAttributes: route?.spanAttributes,
        });
        const ctx = new RequestContext(requestId, method, path, span, context, traceFlags, performance.now());
        ctx.clientAddress = req.socket.remoteAddress;
        res[kContext] = ctx;
        res.once('close', onResponseClose);
        instruments.activeRequests++;
        const refusal = closing
          ? SHUTTING_DOWN
          : normalized === null
            ? BAD_PATH
            : req.rawHeaders.length > maxHeaderLines
              ? TOO_MANY_HEADERS
              : undefined;
        if (refusal !== undefined) {
          const headers = ['connection', 'close', ...traceResponseHeaders(ctx)];
          requestStorage.run(ctx, writeJsonError, res, refusal.status, { error: refusal.error, message: refusal.message, traceId: ctx.traceId, requestId }, headers);
          return;
        }
        // Proxied routes are matched here and go straight to undici, which writes the trace headers
        // with the upstream's in one writeHead; Fastify answers the rest (reserved paths above,
        // 404s, framework-level errors), so those responses get them set in advance.
        if (route === undefined) {
          const headers = traceResponseHeaders(ctx);
          for (let i = 0; i < headers.length; i += 2) res.setHeader(headers[i]!, headers[i + 1]!);
          requestStorage.run(ctx, fastifyHandler, req, res);
        } else {
          requestStorage.run(ctx, proxyOrFail, route, ctx, req, res);
        }
      });
    },
  });

  app.setNotFoundHandler((request, reply) => {
    const ctx = currentRequest();
    reply.hijack();
    writeJsonError(reply.raw, 404, {
      error: 'not_found',
      message: `no route matches ${request.raw.method} ${ctx?.path ?? request.url}`,
      traceId: ctx?.traceId,
      requestId: ctx?.requestId,
    });
  });

  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    const ctx = currentRequest();
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500) logger.error({ err: error }, 'request failed inside the gateway');
    reply.hijack();
    if (reply.raw.headersSent) {
      reply.raw.destroy(error);
      return;
    }
    writeJsonError(reply.raw, status, {
      error: status >= 500 ? 'internal_error' : 'bad_request',
      // Never a stack trace; for 4xx the framework's message names the problem with the request.
      message: status >= 500 ? 'the gateway failed to handle the request' : error.message,
      traceId: ctx?.traceId,
      requestId: ctx?.requestId,
    });
  });

  const startedAt = Date.now();
  if (config.listen.metricsAndHealth) {
    void app.register(metricsRoute, { text: options.metricsText ?? telemetry().metricsText });
    void app.register(healthRoutes, { monitor: health, version: VERSION, startedAt });
  }
  // Unmatched requests reach Fastify only for a 404: their bodies are never parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  return {
    app,
    server: app.server,
    health,
    async listen() {
      await health.start();
      const wanted = options.port ?? config.listen.port;
      // Fastify hands these options to net.Server#listen as they are; its types lack reusePort.
      const listenOptions: FastifyListenOptions & { reusePort?: boolean } = { host: config.listen.host, port: wanted, reusePort: options.reusePort === true };
      await app.listen(listenOptions);
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : wanted;
      return { host: config.listen.host, port };
    },
    async close() {
      closing = true;
      health.stop();
      const grace = setTimeout(() => app.server.closeAllConnections(), config.shutdown.graceMs);
      grace.unref();
      // Idle keep-alive sockets close now; busy ones close once their response is done.
      app.server.closeIdleConnections();
      await app.close();
      clearTimeout(grace);
      await closeUpstreams(upstreams);
      accessLog.flush();
    },
    flushAccessLog: accessLog.flush,
  };
}
