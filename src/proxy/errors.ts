import type { ServerResponse } from 'node:http';
import { INVALID_TRACEID } from '@opentelemetry/api';

/** What went wrong with an upstream call; the value of `error.type` and of the error metric. */
export type UpstreamFailure = 'connect' | 'timeout' | 'reset' | 'client_aborted' | 'body_too_large' | 'internal';

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH']);

export function classifyUpstreamError(err: Error & { code?: string; cause?: unknown }): UpstreamFailure {
  const code = err.code ?? (err.cause as { code?: string } | undefined)?.code;
  if (code !== undefined) {
    if (code === 'GATEWAY_BODY_TOO_LARGE') return 'body_too_large';
    if (CONNECT_CODES.has(code)) return 'connect';
    if (TIMEOUT_CODES.has(code)) return 'timeout';
    if (RESET_CODES.has(code)) return 'reset';
  }
  if (err.name === 'AggregateError') return 'connect'; // happy-eyeballs: every address refused
  return 'internal';
}

/** The gateway's answer for each failure kind, when no response byte was sent yet. */
export function failureResponse(kind: UpstreamFailure, upstream: string): { status: number; error: string; message: string } {
  switch (kind) {
    case 'connect':
      return { status: 502, error: 'upstream_unreachable', message: `upstream "${upstream}" refused the connection or could not be reached` };
    case 'timeout':
      return { status: 504, error: 'upstream_timeout', message: `upstream "${upstream}" did not answer within the route timeout` };
    case 'body_too_large':
      return { status: 413, error: 'payload_too_large', message: `request body exceeds the route's size limit` };
    case 'reset':
      return { status: 502, error: 'upstream_reset', message: `upstream "${upstream}" closed the connection before answering` };
    default:
      return { status: 502, error: 'bad_gateway', message: `the request to upstream "${upstream}" failed` };
  }
}

export interface ErrorBody {
  error: string;
  message: string;
  traceId: string | undefined;
  requestId: string | undefined;
}

/**
 * Writes the JSON error body every gateway-generated error carries. `headers` is a flat
 * `[name, value, …]` list (the trace headers, Retry-After, …) written along with the body's own.
 */
export function writeJsonError(res: ServerResponse, status: number, body: ErrorBody, headers: readonly string[] = []): void {
  // With tracing switched off (OTEL_SDK_DISABLED) there is no trace to name.
  const payload = JSON.stringify(body.traceId === INVALID_TRACEID ? { ...body, traceId: undefined } : body);
  res.writeHead(status, [...headers, 'content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(payload)), 'cache-control', 'no-store']);
  res.end(payload);
}
