import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  isSpanContextValid,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import type { GatewayTracer } from './gateway-tracer.js';

const apiTracer = trace.getTracer('tracing-gateway');
let gatewayTracer: GatewayTracer | undefined;

/**
 * Makes the gateway's spans with `tracer` (set up by the telemetry start-up from the SDK's
 * sampler, limits, resource and processors). Without one (SDK disabled, or modules used on their
 * own) spans come from the globally registered OpenTelemetry API tracer.
 */
export function useGatewayTracer(tracer: GatewayTracer | undefined): void {
  gatewayTracer = tracer;
}

/**
 * Starts a span and then sets its attributes. Passing them to the SDK's startSpan instead costs
 * two full sanitising passes (each copying the set and validating every value); setAttributes
 * validates each value once, with the same limits. The samplers configurable through
 * OTEL_TRACES_SAMPLER do not read attributes, so they decide the same without them.
 */
function startWithAttributes(name: string, kind: SpanKind, attributes: Attributes, parent: Context, links: Link[] | undefined): Span {
  if (gatewayTracer !== undefined) return gatewayTracer.startSpan(name, kind, attributes, parent, links);
  const span = apiTracer.startSpan(name, links === undefined ? { kind } : { kind, links }, parent);
  if (span.isRecording()) span.setAttributes(attributes);
  return span;
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE']);

/** Semantic conventions: methods outside the known set are reported as `_OTHER`. */
export function normalizeMethod(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : '_OTHER';
}

const headerGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

export const headerSetter: TextMapSetter<Record<string, string | string[]>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** Replaces the values of sensitive query parameters with REDACTED (semantic conventions for url.query). */
export function redactQuery(query: string, sensitive: ReadonlySet<string>): string {
  if (sensitive.size === 0) return query;
  let changed = false;
  const parts = query.split('&');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    const key = eq === -1 ? part : part.slice(0, eq);
    if (eq !== -1 && sensitive.has(key.toLowerCase())) {
      parts[i] = `${key}=REDACTED`;
      changed = true;
    }
  }
  return changed ? parts.join('&') : query;
}

function splitHost(host: string | undefined): [string | undefined, number | undefined] {
  if (!host) return [undefined, undefined];
  const bracket = host.lastIndexOf(']');
  const colon = host.lastIndexOf(':');
  if (colon > bracket) {
    const port = Number(host.slice(colon + 1));
    return [host.slice(0, colon), Number.isInteger(port) ? port : undefined];
  }
  return [host, undefined];
}

export interface ServerSpanInput {
  req: IncomingMessage;
  method: string;
  path: string;
  query: string | undefined;
  requestId: string;
  trustInbound: boolean;
  /** Span name when routed (`<METHOD> <route>`); default: the method alone. */
  name?: string | undefined;
  /** Route attributes (http.route, gateway.*), when the request matched a route. */
  routeAttributes?: Attributes | undefined;
}

/** W3C Trace Context Level 2 "random" trace-flag. */
export const RANDOM_TRACE_FLAG = 0x02;

/**
 * Starts the SERVER span of a request from its inbound trace headers. With trustInbound off
 * (edge distrust), the caller's context is not continued: a new trace starts and links to it.
 * Returns the span, the context the upstream call will be made in (inbound baggage kept only
 * when trusted), and the W3C trace-flags to propagate: the sampled bit from the sampling
 * decision plus the Level 2 random bit, which the SDK does not carry on the spans it creates.
 */
export function startServerSpan(input: ServerSpanInput): { span: Span; context: Context; traceFlags: number } {
  const { req } = input;
  const inbound = propagation.extract(ROOT_CONTEXT, req.headers, headerGetter);
  const caller = trace.getSpanContext(inbound);
  const continued = input.trustInbound && caller !== undefined && isSpanContextValid(caller);
  let parent = inbound;
  let links: Link[] | undefined;
  if (!input.trustInbound) {
    parent = ROOT_CONTEXT;
    if (caller && isSpanContextValid(caller)) links = [{ context: caller, attributes: { 'gateway.link.reason': 'untrusted_inbound_context' } }];
  }
  const [address, port] = splitHost(req.headers.host);
  const attributes: Attributes = {
    'http.request.method': input.method,
    'url.path': input.path,
    'url.scheme': 'http',
    'network.protocol.version': req.httpVersion,
    'gateway.request_id': input.requestId,
  };
  if (input.method === '_OTHER') attributes['http.request.method_original'] = req.method;
  if (input.query) attributes['url.query'] = input.query;
  if (address) attributes['server.address'] = address;
  if (port) attributes['server.port'] = port;
  if (req.socket.remoteAddress) attributes['client.address'] = req.socket.remoteAddress;
  const ua = req.headers['user-agent'];
  if (ua) attributes['user_agent.original'] = ua;
  if (input.routeAttributes) Object.assign(attributes, input.routeAttributes);

  // Routed before the span starts, so name and attributes are complete at start.
  const span = startWithAttributes(input.name ?? input.method, SpanKind.SERVER, attributes, parent, links);
  // A continued trace keeps the caller's random bit; a trace the gateway starts has an SDK-generated
  // random trace-id, so it sets it. Unknown bits are never invented.
  const random = continued ? caller.traceFlags & RANDOM_TRACE_FLAG : RANDOM_TRACE_FLAG;
  const traceFlags = (span.spanContext().traceFlags & 0x01) | random;
  return { span, context: trace.setSpan(parent, span), traceFlags };
}

export interface ClientSpanInput {
  method: string;
  upstreamName: string;
  hostname: string;
  port: number;
  urlFull: string;
  /** 0 (default) for the first try; retries carry http.request.resend_count. */
  resendCount?: number;
}

/** Starts the CLIENT span for the upstream call, a child of the server span. */
export function startClientSpan(parent: Context, input: ClientSpanInput): { span: Span; context: Context } {
  const attributes: Attributes = {
    'http.request.method': input.method,
    'server.address': input.hostname,
    'server.port': input.port,
    'url.full': input.urlFull,
    'gateway.upstream': input.upstreamName,
  };
  if (input.resendCount) attributes['http.request.resend_count'] = input.resendCount;
  const span = startWithAttributes(input.method, SpanKind.CLIENT, attributes, parent, undefined);
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Writes the trace headers for `context` (the client span's) into the outgoing headers, with the
 * request's W3C trace-flags (see startServerSpan) in place of the SDK's sampled-only flags.
 */
export function injectTraceHeaders(context: Context, headers: Record<string, string | string[]>, traceFlags?: number): void {
  const sc = trace.getSpanContext(context);
  if (sc !== undefined && traceFlags !== undefined && sc.traceFlags !== traceFlags) context = trace.setSpanContext(context, { ...sc, traceFlags });
  propagation.inject(context, headers, headerSetter);
}

/** Marks a span failed: ERROR status, error.type, and an exception event. */
export function failSpan(span: Span, errorType: string, error: Error | undefined, message: string): void {
  span.setAttribute('error.type', errorType);
  if (error) span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
