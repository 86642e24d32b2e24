import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import type { RouteConfig } from '../config/schema.js';
import { requestStorage, type RequestContext } from '../context/request-context.js';
import type { Logger } from '../logging/logger.js';
import type { GatewayInstruments } from '../telemetry/instruments.js';
import { failSpan, injectTraceHeaders, startClientSpan } from '../tracing/spans.js';
import { classifyUpstreamError, failureResponse, writeJsonError, type UpstreamFailure } from './errors.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import type { Upstream } from './upstreams.js';

class ClientAbortedError extends Error {
  override name = 'ClientAbortedError';
  readonly code = 'GATEWAY_CLIENT_ABORTED';
}

export interface ExchangeDeps {
  logger: Logger;
  instruments: GatewayInstruments;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * One proxied request: streams the client's request to the upstream and the upstream's response
 * back, with backpressure both ways, and owns the CLIENT span. A class rather than closures so the
 * per-request state is one object; undici calls it directly (`Pool.dispatch`).
 */
export class UpstreamExchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private clientSpan: Span | undefined;
  private startTime = 0;
  private done = false;
  private pendingAbort: Error | undefined;
  private onDrain: (() => void) | undefined;

  constructor(
    private readonly ctx: RequestContext,
    private readonly route: RouteConfig,
    private readonly upstream: Upstream,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly deps: ExchangeDeps,
  ) {}

  start(): void {
    const { ctx, req, upstream, route } = this;
    const rawUrl = req.url ?? '/';
    let forwarded = rawUrl;
    if (route.stripPrefix && route.prefix !== '/') {
      forwarded = rawUrl.slice(route.prefix.length);
      if (forwarded === '' || forwarded.charCodeAt(0) === 63 /* ? */) forwarded = `/${forwarded}`;
    }
    const path = upstream.basePath + forwarded;
    const headers = upstreamRequestHeaders(req, { requestId: ctx.requestId, clientAddress: req.socket.remoteAddress, proto: 'http' });
    const q = path.indexOf('?');
    const client = startClientSpan(ctx.otelContext, {
      method: ctx.method,
      upstreamName: upstream.name,
      hostname: upstream.hostname,
      port: upstream.port,
      urlFull: upstream.origin + (q === -1 ? path : path.slice(0, q)),
    });
    this.clientSpan = client.span;
    injectTraceHeaders(client.context, headers, ctx.traceFlags);
    ctx.exchange = this;
    if (this.deps.logger.isLevelEnabled('debug')) this.deps.logger.debug({ upstream: upstream.name, path, headers: req.headers }, 'forwarding request');
    this.startTime = performance.now();
    upstream.pool.dispatch(
      {
        path,
        method: req.method as Dispatcher.HttpMethod,
        headers,
        body: hasBody(req) ? req : null,
        headersTimeout: route.timeoutMs,
        bodyTimeout: route.timeoutMs,
      },
      this,
    );
  }

  onBodySent(chunk: Buffer | string): void {
    this.ctx.bytesIn += chunk.length;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.ctx.upstreamStatus = statusCode;
    if (statusCode < 200) return; // informational responses are not forwarded
    // Undici calls back in the async context of whichever request opened the socket; re-enter this one.
    if (this.deps.logger.isLevelEnabled('debug')) requestStorage.run(this.ctx, this.logResponseStart, statusCode, headers);
    this.res.writeHead(statusCode, clientResponseHeaders(headers));
  }

  private readonly logResponseStart = (statusCode: number, headers: IncomingHttpHeaders): void => {
    this.deps.logger.debug({ upstream: this.upstream.name, upstream_status: statusCode, upstreamHeaders: headers }, 'upstream responded');
  };

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.ctx.bytesOut += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.onDrain ??= () => this.controller?.resume();
      this.res.once('drain', this.onDrain);
    }
  }

  onResponseEnd(): void {
    this.res.end();
    this.finish(undefined, undefined);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    const kind = err instanceof ClientAbortedError ? 'client_aborted' : classifyUpstreamError(err);
    this.finish(kind, err);
    if (kind === 'client_aborted') return;
    // Undici calls back outside the request's async context; re-enter it so the log line carries the IDs.
    requestStorage.run(this.ctx, this.reportFailure, kind, err);
  }

  private readonly reportFailure = (kind: UpstreamFailure, err: Error): void => {
    const { ctx, res, upstream } = this;
    const failure = failureResponse(kind, upstream.name);
    this.deps.logger.warn(
      { err: { type: err.name, message: err.message, code: (err as { code?: string }).code }, upstream: upstream.name, error_type: kind },
      `upstream request failed: ${failure.message}`,
    );
    if (!res.headersSent) {
      failSpan(ctx.span, kind, err, failure.message);
      writeJsonError(res, failure.status, { error: failure.error, message: failure.message, traceId: ctx.traceId, requestId: ctx.requestId });
    } else {
      // Part of the response is already on the wire: the only honest signal left is a cut connection.
      failSpan(ctx.span, kind, err, `response truncated: ${failure.message}`);
      res.destroy(err);
    }
  };

  /** The client went away: stop the upstream call too. */
  abortByClient(): void {
    if (this.done) return;
    const reason = new ClientAbortedError('client closed the connection');
    this.finish('client_aborted', reason);
    if (this.controller) this.controller.abort(reason);
    else this.pendingAbort = reason;
  }

  private finish(kind: UpstreamFailure | undefined, err: Error | undefined): void {
    if (this.done) return;
    this.done = true;
    const { ctx, upstream, deps } = this;
    ctx.exchange = undefined;
    const span = this.clientSpan!;
    const status = ctx.upstreamStatus;
    const seconds = (performance.now() - this.startTime) / 1000;
    let outcome: string = kind ?? 'ok';
    if (status > 0) span.setAttribute('http.response.status_code', status);
    if (kind !== undefined) {
      ctx.errorType = kind;
      failSpan(span, kind, err, err?.message ?? kind);
      if (kind !== 'client_aborted') deps.instruments.upstreamErrors.add(1, { 'gateway.upstream': upstream.name, 'error.type': kind });
    } else if (status >= 500) {
      outcome = '5xx';
      failSpan(span, String(status), undefined, `upstream answered ${status}`);
      deps.instruments.upstreamErrors.add(1, { 'gateway.upstream': upstream.name, 'error.type': '5xx' });
    } else if (status >= 400) {
      failSpan(span, String(status), undefined, `upstream answered ${status}`);
    }
    deps.instruments.clientDuration.record(seconds, deps.instruments.clientAttributes(upstream.name, ctx.method, status, outcome));
    span.end();
  }
}
