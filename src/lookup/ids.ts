import { isValidRequestId } from '../context/request-id.js';

export { isValidRequestId };

const TRACE_ID_RE = /^[0-9a-f]{32}$/;
const TRACEPARENT_RE = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

export const TRACE_ID_HELP =
  'a trace ID is 32 hexadecimal characters, e.g. 4bf92f3577b34da6a3ce929d0e0e4736 (the X-Trace-ID response header; a traceparent/traceresponse value is accepted too)';

export const REQUEST_ID_HELP = 'a request ID is 1-128 characters of [A-Za-z0-9._:-] (the X-Request-ID response header)';

/**
 * The canonical (lower-case) trace ID in `input`, or undefined. People paste IDs from logs,
 * tickets and e-mails: surrounding whitespace and upper case are forgiven, and a whole
 * traceparent/traceresponse header value is accepted. All-zero is invalid (W3C).
 */
export function normalizeTraceId(input: string): string | undefined {
  const value = input.trim().toLowerCase();
  const id = TRACE_ID_RE.test(value) ? value : TRACEPARENT_RE.exec(value)?.[1];
  return id !== undefined && id !== '00000000000000000000000000000000' ? id : undefined;
}
