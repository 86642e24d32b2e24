import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, Span } from '@opentelemetry/api';
import type { RouteConfig } from '../config/schema.js';

/** The fields every log line written while a request is handled carries (pino mixin output). */
export interface LogBindings {
  trace_id: string;
  span_id: string;
  trace_flags: string;
  request_id: string;
}

/**
 * Everything the gateway knows about one request. Created once at the edge, before routing,
 * and reachable from any callback of that request through `currentRequest()`.
 */
export class RequestContext {
  /** performance.now() at arrival. */
  readonly startTime: number;
  readonly requestId: string;
  /** Normalised method (semantic conventions: unknown methods are `_OTHER`). */
  readonly method: string;
  readonly path: string;
  readonly span: Span;
  /** OTel context holding the server span (and trusted inbound baggage): parent of the upstream call. */
  readonly otelContext: Context;
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  readonly log: LogBindings;
  route: RouteConfig | undefined = undefined;
  /** `<route prefix>/*` once routed; the http.route value. */
  routeTemplate: string | undefined = undefined;
  clientAddress: string | undefined = undefined;
  upstreamStatus = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Failure kind when the upstream call failed (connect, timeout, reset, ...). */
  errorType: string | undefined = undefined;
  /** The in-flight upstream call, if any; aborted when the client goes away. */
  exchange: { abortByClient(): void } | undefined = undefined;

  /** W3C trace-flags of this request: sampled bit and the Level 2 random bit. */
  readonly traceFlags: number;

  constructor(requestId: string, method: string, path: string, span: Span, otelContext: Context, traceFlags: number, startTime: number) {
    this.requestId = requestId;
    this.method = method;
    this.path = path;
    this.span = span;
    this.otelContext = otelContext;
    this.startTime = startTime;
    this.traceFlags = traceFlags;
    const sc = span.spanContext();
    this.traceId = sc.traceId;
    this.spanId = sc.spanId;
    this.sampled = (sc.traceFlags & 1) === 1;
    this.log = {
      trace_id: sc.traceId,
      span_id: sc.spanId,
      trace_flags: `0${traceFlags.toString(16)}`,
      request_id: requestId,
    };
  }
}

export const requestStorage = new AsyncLocalStorage<RequestContext>();

export function currentRequest(): RequestContext | undefined {
  return requestStorage.getStore();
}
