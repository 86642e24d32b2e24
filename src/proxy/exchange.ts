import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Span } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import type { RouteConfig } from '../config/schema.js';
import { requestStorage, type RequestContext } from '../context/request-context.js';
import type { Logger } from '../logging/logger.js';
import type { GatewayInstruments } from '../telemetry/instruments.js';
import { failSpan, injectTraceHeaders, startClientSpan } from '../tracing/spans.js';
import type { RetryBudget } from './circuit-breaker.js';
import { classifyUpstreamError, failureResponse, writeJsonError, type UpstreamFailure } from './errors.js';
import { clientResponseHeaders, traceResponseHeaders, upstreamRequestHeaders } from './headers.js';
import type { Upstream } from './upstreams.js';

class ClientAbortedError extends Error {
  override name = 'ClientAbortedError';
  readonly code = 'GATEWAY_CLIENT_ABORTED';
}

/** No response headers within the route timeout (undici's own timer fires up to ~0.5 s late). */
class HeadersTimeoutError extends Error {
  override name = 'HeadersTimeoutError';
  readonly code = 'UND_ERR_HEADERS_TIMEOUT';
}

/** Ends an attempt whose response the gateway decided to retry instead of forwarding. */
class RetryingError extends Error {
  override name = 'RetryingError';
}

export interface ExchangeDeps {
  logger: Logger;
  instruments: GatewayInstruments;
}

export interface RouteRuntime {
  config: RouteConfig;
  upstream: Upstream;
  budget: RetryBudget;
  retryStatuses: ReadonlySet<number>;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * One proxied request: streams the client's request to the upstream and the upstream's response
 * back, with backpressure both ways. Each try is an {@link Attempt} with its own CLIENT span;
 * a failed try is retried only when the method is idempotent, the request has no body, nothing
 * was sent to the client yet, and the route's retry budget allows it.
 */
export class UpstreamExchange {
  /** The attempt whose callbacks are live; callbacks from an abandoned attempt are ignored. */
  current: Attempt | undefined;
  finished = false;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Readable | null;
  private attempts = 0;
  private onDrain: (() => void) | undefined;

  constructor(
    readonly ctx: RequestContext,
    readonly route: RouteRuntime,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly deps: ExchangeDeps,
    /** A replacement body stream (the route's size limit), or null to forward the request as is. */
    bodyOverride: Readable | null = null,
  ) {
    const { config, upstream } = route;
    const rawUrl = req.url ?? '/';
    let forwarded = rawUrl;
    if (config.stripPrefix && config.prefix !== '/') {
      forwarded = rawUrl.slice(config.prefix.length);
      if (forwarded === '' || forwarded.charCodeAt(0) === 63 /* ? */) forwarded = `/${forwarded}`;
    }
    this.path = upstream.basePath + forwarded;
    this.headers = upstreamRequestHeaders(req, { requestId: ctx.requestId, clientAddress: req.socket.remoteAddress, proto: 'http' });
    this.body = bodyOverride ?? (hasBody(req) ? req : null);
  }

  start(): void {
    const { ctx, route, deps } = this;
    route.budget.deposit();
    if (!route.upstream.breaker.allow()) {
      const retryAfter = Math.ceil(route.upstream.breaker.retryAfterMs() / 1000);
      const message = `upstream "${route.upstream.name}" is failing; its circuit is open (next trial in ${retryAfter} s)`;
      ctx.errorType = 'circuit_open';
      failSpan(ctx.span, 'circuit_open', undefined, message);
      deps.instruments.upstreamErrors.add(1, { 'gateway.upstream': route.upstream.name, 'error.type': 'circuit_open' });
      writeJsonError(this.res, 503, { error: 'upstream_circuit_open', message, traceId: ctx.traceId, requestId: ctx.requestId }, ['retry-after', String(Math.max(1, retryAfter)), ...traceResponseHeaders(ctx)]);
      return;
    }
    ctx.exchange = this;
    if (deps.logger.isLevelEnabled('debug')) deps.logger.debug({ upstream: route.upstream.name, path: this.path, headers: this.req.headers }, 'forwarding request');
    this.dispatch();
  }

  private dispatch(): void {
    const attempt = new Attempt(this, this.attempts++);
    this.current = attempt;
    attempt.send();
  }

  /** Whether a failed try may be repeated (and spends the budget token if so). */
  canRetry(): boolean {
    const { route, req } = this;
    return (
      this.attempts <= route.config.retries.attempts &&
      !this.finished &&
      !this.res.headersSent &&
      this.body === null &&
      IDEMPOTENT.has(req.method!) &&
      route.budget.trySpend()
    );
  }

  retry(reason: string): void {
    this.ctx.errorType = undefined;
    this.deps.instruments.retries.add(1, { 'gateway.upstream': this.route.upstream.name, reason });
    this.dispatch();
  }

  /** Streams a response chunk to the client; pauses the upstream while the client is slow. */
  write(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.ctx.bytesOut += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.onDrain ??= () => this.current?.resume();
      this.res.once('drain', this.onDrain);
    }
  }

  end(): void {
    this.finished = true;
    this.ctx.exchange = undefined;
    this.res.end();
  }

  /** The last try failed and will not be retried: answer with a JSON error or cut the connection. */
  fail(kind: UpstreamFailure, err: Error): void {
    this.finished = true;
    this.ctx.exchange = undefined;
    // Undici calls back outside the request's async context; re-enter it so the log line carries the IDs.
    requestStorage.run(this.ctx, this.reportFailure, kind, err);
  }

  private readonly reportFailure = (kind: UpstreamFailure, err: Error): void => {
    const { ctx, res, route } = this;
    const failure = failureResponse(kind, route.upstream.name);
    this.deps.logger.warn(
      { err: { type: err.name, message: err.message, code: (err as { code?: string }).code }, upstream: route.upstream.name, error_type: kind, attempts: this.attempts },
      `upstream request failed: ${failure.message}`,
    );
    if (!res.headersSent) {
      failSpan(ctx.span, kind, err, failure.message);
      writeJsonError(res, failure.status, { error: failure.error, message: failure.message, traceId: ctx.traceId, requestId: ctx.requestId }, traceResponseHeaders(ctx));
    } else {
      // Part of the response is already on the wire: the only honest signal left is a cut connection.
      failSpan(ctx.span, kind, err, `response truncated: ${failure.message}`);
      res.destroy(err);
    }
  };

  /** The client went away: stop the upstream call too. */
  abortByClient(): void {
    if (this.finished) return;
    this.finished = true;
    this.ctx.exchange = undefined;
    this.current?.abortByClient();
  }
}

/** One try of an exchange: the undici dispatch handler and its CLIENT span. */
class Attempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private readonly span: Span;
  private readonly startTime = performance.now();
  private status = 0;
  private done = false;
  private pendingAbort: Error | undefined;
  private headersTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly exchange: UpstreamExchange,
    private readonly resendCount: number,
  ) {
    const { ctx, route, path } = exchange;
    const upstream = route.upstream;
    const q = path.indexOf('?');
    const client = startClientSpan(ctx.otelContext, {
      method: ctx.method,
      upstreamName: upstream.name,
      hostname: upstream.hostname,
      port: upstream.port,
      urlFull: upstream.origin + (q === -1 ? path : path.slice(0, q)),
      resendCount,
    });
    this.span = client.span;
    // Each try carries its own client span as the upstream's parent.
    injectTraceHeaders(client.context, exchange.headers, ctx.traceFlags);
  }

  send(): void {
    const { exchange } = this;
    const timeout = exchange.route.config.timeoutMs;
    this.headersTimer = setTimeout(Attempt.headersTimedOut, timeout, this);
    exchange.route.upstream.pool.dispatch(
      {
        path: exchange.path,
        method: exchange.req.method as Dispatcher.HttpMethod,
        headers: exchange.headers,
        body: exchange.body,
        // The gateway's own timer enforces the header deadline precisely, so undici's is off: each
        // of its coarse timers lives on in a list until its next tick (~0.5 s), long enough to be
        // promoted to the old generation, and with two per request they were a steady source of it.
        headersTimeout: 0,
        bodyTimeout: timeout,
      },
      this,
    );
  }

  resume(): void {
    this.controller?.resume();
  }

  private static headersTimedOut(attempt: Attempt): void {
    attempt.headersTimer = undefined;
    if (attempt.done || attempt.status !== 0) return;
    const err = new HeadersTimeoutError(`no response headers within ${attempt.exchange.route.config.timeoutMs} ms`);
    if (attempt.controller) attempt.controller.abort(err);
    else attempt.pendingAbort = err;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.pendingAbort) controller.abort(this.pendingAbort);
  }

  onBodySent(chunk: Buffer | string): void {
    this.exchange.ctx.bytesIn += chunk.length;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (this.done) return;
    const { exchange } = this;
    this.status = statusCode;
    if (statusCode < 200) return; // informational responses are not forwarded
    clearTimeout(this.headersTimer);
    if (exchange.route.retryStatuses.has(statusCode) && exchange.canRetry()) {
      this.finish(undefined, undefined);
      controller.abort(new RetryingError(`retrying after ${statusCode}`));
      exchange.retry(String(statusCode));
      return;
    }
    exchange.ctx.upstreamStatus = statusCode;
    // Undici calls back in the async context of whichever request opened the socket; re-enter this one.
    if (exchange.deps.logger.isLevelEnabled('debug')) requestStorage.run(exchange.ctx, this.logResponseStart, statusCode, headers);
    exchange.res.writeHead(statusCode, clientResponseHeaders(headers, exchange.ctx));
  }

  private readonly logResponseStart = (statusCode: number, headers: IncomingHttpHeaders): void => {
    this.exchange.deps.logger.debug({ upstream: this.exchange.route.upstream.name, upstream_status: statusCode, upstreamHeaders: headers }, 'upstream responded');
  };

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.done) this.exchange.write(controller, chunk);
  }

  onResponseEnd(): void {
    if (this.done) return;
    this.finish(undefined, undefined);
    this.exchange.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    const kind = err instanceof ClientAbortedError ? 'client_aborted' : classifyUpstreamError(err);
    this.finish(kind, err);
    if (kind === 'client_aborted') return;
    const { exchange } = this;
    // Only failures that happened before the upstream answered are safe to try again.
    if ((kind === 'connect' || (kind === 'reset' && this.status === 0)) && exchange.canRetry()) {
      exchange.retry(kind);
      return;
    }
    exchange.fail(kind, err);
  }

  abortByClient(): void {
    if (this.done) return;
    const reason = new ClientAbortedError('client closed the connection');
    this.finish('client_aborted', reason);
    if (this.controller) this.controller.abort(reason);
    else this.pendingAbort = reason;
  }

  /** Ends the CLIENT span and records the try's metrics and circuit-breaker outcome. */
  private finish(kind: UpstreamFailure | undefined, err: Error | undefined): void {
    this.done = true;
    if (this.headersTimer !== undefined) clearTimeout(this.headersTimer);
    const { exchange, span, status } = this;
    const { ctx, route, deps } = exchange;
    const upstream = route.upstream;
    const seconds = (performance.now() - this.startTime) / 1000;
    let outcome: string = kind ?? 'ok';
    if (status > 0) span.setAttribute('http.response.status_code', status);
    if (kind === 'client_aborted' || kind === 'body_too_large') {
      // Caused by the client, not the upstream: no upstream error, no circuit-breaker failure.
      ctx.errorType = kind;
      failSpan(span, kind, err, err?.message ?? kind);
      upstream.breaker.onAbandoned();
    } else if (kind !== undefined) {
      ctx.errorType = kind;
      failSpan(span, kind, err, err?.message ?? kind);
      deps.instruments.upstreamErrors.add(1, { 'gateway.upstream': upstream.name, 'error.type': kind });
      upstream.breaker.onFailure();
    } else if (status >= 500) {
      outcome = '5xx';
      failSpan(span, String(status), undefined, `upstream answered ${status}`);
      deps.instruments.upstreamErrors.add(1, { 'gateway.upstream': upstream.name, 'error.type': '5xx' });
      if (status === 502 || status === 503 || status === 504) upstream.breaker.onFailure();
      else upstream.breaker.onSuccess();
    } else {
      if (status >= 400) failSpan(span, String(status), undefined, `upstream answered ${status}`);
      upstream.breaker.onSuccess();
    }
    deps.instruments.clientSeries(upstream.name, ctx.method, status, outcome).record(seconds);
    span.end();
  }
}
