import { request } from 'undici';
import type { SpanData, SpanKindName, SpanStatusName } from './summary.js';

/**
 * Tempo's HTTP API, as Tempo 3.0 serves it:
 * - `GET /api/v2/traces/<hex id>` → `{"trace":{"resourceSpans":[...]}, "metrics":{...}}`: OTLP
 *   marshalled by gogo jsonpb, so IDs are base64 bytes (not the hex of the OTLP JSON spec),
 *   enums are names (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`), 64-bit integers are strings
 *   (`startTimeUnixNano`, `intValue`), and zero values are left out (`"status":{}`).
 *   A missing trace is a 404, or a 200 with no spans; both mean "not found".
 * - `GET /api/search?q=<TraceQL>&start&end` → `{"traces":[{"traceID":"<hex>",...}]}` where the
 *   hex trace ID has its leading zeros stripped. Search does not see the last 30 s
 *   (`query_end_cutoff`); trace-by-ID does.
 * Hex IDs are accepted too, in case Tempo follows the OTLP JSON spec one day (grafana/tempo#5437).
 */

export class TempoError extends Error {
  constructor(
    readonly kind: 'unreachable' | 'bad_status' | 'bad_response',
    message: string,
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;
type KeyValue = { key?: unknown; value?: Json };

const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** A base64 or hex ID of `bytes` bytes, as lower-case hex; '' when absent or malformed. */
export function decodeId(value: unknown, bytes: number): string {
  if (typeof value !== 'string' || value === '') return '';
  if (value.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(value)) return value.toLowerCase();
  const raw = Buffer.from(value, 'base64');
  return raw.length === bytes ? raw.toString('hex') : '';
}

function anyValue(v: Json | undefined): unknown {
  if (!v) return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('boolValue' in v) return v.boolValue === true;
  if ('arrayValue' in v) return ((v.arrayValue as { values?: Json[] } | undefined)?.values ?? []).map(anyValue);
  if ('kvlistValue' in v) return JSON.stringify(attributes((v.kvlistValue as { values?: KeyValue[] } | undefined)?.values));
  if ('bytesValue' in v) return String(v.bytesValue);
  return undefined;
}

function attributes(list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (Array.isArray(list)) for (const kv of list as KeyValue[]) if (typeof kv?.key === 'string') out[kv.key] = anyValue(kv.value);
  return out;
}

/** Nanoseconds (a decimal string in Tempo's JSON) as fractional epoch milliseconds. */
function nanosToMs(value: unknown): number {
  try {
    return Number(BigInt(String(value ?? 0)) / 1000n) / 1000;
  } catch {
    return 0;
  }
}

const OTLP_KINDS: SpanKindName[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

function kindName(kind: unknown): SpanKindName {
  if (typeof kind === 'number') return OTLP_KINDS[kind] ?? 'UNSPECIFIED';
  // jsonpb leaves out the zero value, so an absent kind is UNSPECIFIED.
  const name = typeof kind === 'string' ? kind.replace(/^SPAN_KIND_/, '') : 'UNSPECIFIED';
  return OTLP_KINDS.find((k) => k === name) ?? 'UNSPECIFIED';
}

function statusName(code: unknown): SpanStatusName {
  if (code === 2 || code === 'STATUS_CODE_ERROR') return 'ERROR';
  if (code === 1 || code === 'STATUS_CODE_OK') return 'OK';
  return 'UNSET';
}

/** The spans of a Tempo trace-by-ID response (v2 `trace.resourceSpans`; v1 `batches` also read). */
export function spansFromTempo(body: unknown): SpanData[] {
  const root = (body ?? {}) as Json;
  const trace = (root.trace ?? root) as Json;
  const resourceSpans = (trace.resourceSpans ?? trace.batches ?? []) as Json[];
  if (!Array.isArray(resourceSpans)) throw new TempoError('bad_response', 'Tempo answered without a trace.resourceSpans list');
  const out: SpanData[] = [];
  for (const rs of resourceSpans) {
    const resource = attributes((rs.resource as Json | undefined)?.attributes);
    const service = typeof resource['service.name'] === 'string' ? resource['service.name'] : 'unknown_service';
    const scopes = (rs.scopeSpans ?? rs.instrumentationLibrarySpans ?? []) as Json[];
    for (const scope of Array.isArray(scopes) ? scopes : []) {
      const spans = (scope.spans ?? []) as Json[];
      for (const s of Array.isArray(spans) ? spans : []) {
        const traceId = decodeId(s.traceId, 16);
        const spanId = decodeId(s.spanId, 8);
        if (!traceId || !spanId) continue;
        const start = nanosToMs(s.startTimeUnixNano);
        const status = (s.status ?? {}) as Json;
        out.push({
          traceId,
          spanId,
          parentSpanId: decodeId(s.parentSpanId, 8) || undefined,
          service,
          name: typeof s.name === 'string' ? s.name : '',
          kind: kindName(s.kind),
          startMs: start,
          durationMs: Math.max(0, nanosToMs(s.endTimeUnixNano) - start),
          status: statusName(status.code),
          statusMessage: typeof status.message === 'string' && status.message ? status.message : undefined,
          attributes: attributes(s.attributes),
          events: (Array.isArray(s.events) ? (s.events as Json[]) : []).map((e) => ({ name: String(e.name ?? ''), attributes: attributes(e.attributes) })),
        });
      }
    }
  }
  return out;
}

/** Trace IDs from a Tempo search response, newest first, as 32 lower-case hex characters. */
export function traceIdsFromSearch(body: unknown): string[] {
  const traces = ((body ?? {}) as Json).traces;
  if (traces !== undefined && !Array.isArray(traces)) throw new TempoError('bad_response', 'Tempo answered a search without a traces list');
  return ((traces ?? []) as Json[])
    .filter((t) => typeof t.traceID === 'string' && /^[0-9a-fA-F]{1,32}$/.test(t.traceID))
    .map((t) => ({ id: (t.traceID as string).toLowerCase().padStart(32, '0'), start: nanosToMs(t.startTimeUnixNano) }))
    .sort((a, b) => b.start - a.start)
    .map((t) => t.id)
    .filter((id, i, all) => all.indexOf(id) === i);
}

export interface TempoOptions {
  url: string;
  timeoutMs: number;
  /** How far back a request-ID search looks. */
  searchHours: number;
}

export class TempoClient {
  private readonly base: string;

  constructor(private readonly options: TempoOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  get url(): string {
    return this.base;
  }

  get searchHours(): number {
    return this.options.searchHours;
  }

  /** The trace's spans; an empty list when Tempo does not have it. Throws TempoError. */
  async traceById(traceId: string): Promise<SpanData[]> {
    const { status, body } = await this.get(`/api/v2/traces/${traceId}`);
    if (status === 404) return [];
    return spansFromTempo(this.json(body)).filter((s) => s.traceId === traceId);
  }

  /** Traces whose spans carry `gateway.request_id = requestId`, newest first. Throws TempoError. */
  async searchRequestId(requestId: string): Promise<string[]> {
    // requestId is validated ([A-Za-z0-9._:-]), so it cannot break out of the quoted string.
    const q = `{ span.gateway.request_id = "${requestId}" }`;
    const end = Math.ceil(Date.now() / 1000);
    const start = end - this.options.searchHours * 3600;
    const { status, body } = await this.get(`/api/search?q=${encodeURIComponent(q)}&start=${start}&end=${end}&limit=20`);
    if (status === 404) return [];
    return traceIdsFromSearch(this.json(body));
  }

  private json(body: string): unknown {
    try {
      return JSON.parse(body);
    } catch {
      throw new TempoError('bad_response', 'Tempo answered with something that is not JSON');
    }
  }

  private async get(path: string): Promise<{ status: number; body: string }> {
    let res;
    try {
      res = await request(`${this.base}${path}`, {
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': 'tracing-gateway-lookup' },
        headersTimeout: this.options.timeoutMs,
        bodyTimeout: this.options.timeoutMs,
      });
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string } };
      const code = e.code ?? e.cause?.code ?? e.name;
      throw new TempoError('unreachable', `Tempo at ${this.base} could not be reached (${code})`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          res.body.destroy();
          throw new TempoError('bad_response', `Tempo's answer is larger than ${MAX_BODY_BYTES} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      if (err instanceof TempoError) throw err;
      throw new TempoError('unreachable', `Tempo at ${this.base} stopped answering (${(err as { code?: string }).code ?? 'read error'})`);
    }
    const body = Buffer.concat(chunks).toString('utf8');
    if (res.statusCode !== 200 && res.statusCode !== 404) {
      // Tempo's error bodies are short plain text (e.g. a TraceQL parse error): worth passing on.
      const detail = body.replace(/\s+/g, ' ').trim().slice(0, 200);
      throw new TempoError('bad_status', `Tempo answered ${res.statusCode}${detail ? `: ${detail}` : ''}`);
    }
    return { status: res.statusCode, body };
  }
}
