import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { INVALID_TRACEID } from '@opentelemetry/api';
import { formatTraceparent } from '../tracing/w3c-propagator.js';

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy Proxy-Connection. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
]);

/**
 * Request fields the gateway sets itself. Inbound trace headers are removed and the client span's
 * context is injected exactly once; forwarding them as well would send two `traceparent`s.
 * `expect` is answered by the gateway (100-continue) and undici refuses to send it.
 */
const REPLACED_ON_REQUEST = new Set([
  'host',
  'expect',
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'uber-trace-id',
  'x-request-id',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/** Response fields the gateway sets itself on every response. */
const REPLACED_ON_RESPONSE = new Set(['x-trace-id', 'x-request-id', 'traceresponse']);

export const EXPOSED_RESPONSE_HEADERS = 'X-Trace-ID, X-Request-ID, traceresponse';

function isTraceHeaderFamily(name: string): boolean {
  // x-b3-* (B3 multi-header) and uberctx-* (Jaeger baggage)
  return (name.charCodeAt(0) === 120 && name.startsWith('x-b3-')) || (name.charCodeAt(0) === 117 && name.startsWith('uberctx-'));
}

/** Field names listed in Connection are hop-by-hop for this message too. */
function connectionListed(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined) return undefined;
  // The usual values name no field: skip the split on every keep-alive response.
  if (typeof connection === 'string' && /^\s*(keep-alive|close)\s*$/i.test(connection)) return undefined;
  const value = Array.isArray(connection) ? connection.join(',') : connection;
  let listed: Set<string> | undefined;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name && name !== 'close' && name !== 'keep-alive') (listed ??= new Set()).add(name);
  }
  return listed;
}

export interface ForwardingInfo {
  requestId: string;
  clientAddress: string | undefined;
  proto: 'http' | 'https';
}

const MAX_FORWARDED_HOPS = 20;
const ADDRESS_RE = /^[0-9A-Fa-f:.[\]]{1,47}$/;

/** The inbound X-Forwarded-For when it is a comma-separated list of at most 20 IP addresses. */
function validForwardedFor(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const joined = Array.isArray(value) ? value.join(', ') : value;
  const hops = joined.split(',');
  if (hops.length > MAX_FORWARDED_HOPS) return undefined;
  for (const hop of hops) if (!ADDRESS_RE.test(hop.trim())) return undefined;
  return joined;
}

/** The end-to-end request headers for the upstream, with X-Forwarded-* and X-Request-ID set. */
export function upstreamRequestHeaders(req: IncomingMessage, info: ForwardingInfo): Record<string, string | string[]> {
  const inbound = req.headers;
  const listed = connectionListed(inbound.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in inbound) {
    if (HOP_BY_HOP.has(name) || REPLACED_ON_REQUEST.has(name) || isTraceHeaderFamily(name)) continue;
    if (listed !== undefined && listed.has(name)) continue;
    const value = inbound[name];
    if (value !== undefined) out[name] = value;
  }
  // Appended, never replaced: the upstream decides how far to trust the chain. A chain that is not
  // a short list of addresses is dropped rather than passed on.
  const priorFor = validForwardedFor(inbound['x-forwarded-for']);
  const client = info.clientAddress ?? 'unknown';
  out['x-forwarded-for'] = priorFor ? `${priorFor}, ${client}` : client;
  out['x-forwarded-proto'] = info.proto;
  if (inbound.host) out['x-forwarded-host'] = inbound.host;
  out['x-request-id'] = info.requestId;
  return out;
}

/** What the trace response headers are made of (a RequestContext has them all). */
export interface TraceIds {
  traceId: string;
  spanId: string;
  requestId: string;
  traceFlags: number;
}

/**
 * The headers every response to a traced request carries, as a flat `[name, value, …]` list:
 * writeHead takes it as is, without the per-field bookkeeping of setHeader.
 */
export function traceResponseHeaders(ids: TraceIds, exposeHeaders = true, out: string[] = []): string[] {
  // No trace at all (tracing switched off with OTEL_SDK_DISABLED): no trace headers, only the request ID.
  if (ids.traceId === INVALID_TRACEID) out.push('x-request-id', ids.requestId);
  else out.push('x-trace-id', ids.traceId, 'x-request-id', ids.requestId, 'traceresponse', formatTraceparent(ids.traceId, ids.spanId, ids.traceFlags));
  if (exposeHeaders) out.push('access-control-expose-headers', EXPOSED_RESPONSE_HEADERS);
  return out;
}

/** The end-to-end response headers to pass back to the client, followed by the trace headers. */
export function clientResponseHeaders(upstream: IncomingHttpHeaders, ids: TraceIds): string[] {
  const listed = connectionListed(upstream.connection);
  const out: string[] = [];
  let exposed = false;
  for (const name in upstream) {
    if (HOP_BY_HOP.has(name) || REPLACED_ON_RESPONSE.has(name)) continue;
    if (listed !== undefined && listed.has(name)) continue;
    const value = upstream[name];
    if (value === undefined) continue;
    if (name === 'access-control-expose-headers') {
      out.push(name, `${String(value)}, ${EXPOSED_RESPONSE_HEADERS}`);
      exposed = true;
    } else if (typeof value === 'string') {
      out.push(name, value);
    } else {
      for (const v of value) out.push(name, v);
    }
  }
  return traceResponseHeaders(ids, !exposed, out);
}
