/**
 * One span in a source-neutral shape: the embedded store and Tempo's API are both converted to
 * this before a summary is built, so the page, the API and the CLI see the same thing.
 */
export interface SpanData {
  traceId: string;
  spanId: string;
  /** Undefined for a root span. */
  parentSpanId: string | undefined;
  service: string;
  name: string;
  kind: SpanKindName;
  /** Epoch milliseconds (fractional). */
  startMs: number;
  durationMs: number;
  status: SpanStatusName;
  statusMessage: string | undefined;
  attributes: Readonly<Record<string, unknown>>;
  events: ReadonlyArray<{ name: string; attributes: Readonly<Record<string, unknown>> }>;
}

export type SpanKindName = 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER' | 'UNSPECIFIED';
export type SpanStatusName = 'UNSET' | 'OK' | 'ERROR';

export interface SpanSummary {
  spanId: string;
  parentSpanId: string | null;
  depth: number;
  service: string;
  name: string;
  kind: SpanKindName;
  startOffsetMs: number;
  durationMs: number;
  status: SpanStatusName;
  httpStatus?: number;
  error?: string;
  attributes: Record<string, string | number | boolean>;
}

export interface TraceSummary {
  traceId: string;
  /** `tempo`: the whole trace from Tempo; `gateway`: only this gateway's own recent spans. */
  source: 'tempo' | 'gateway';
  requestId?: string;
  root: {
    service: string;
    name: string;
    method?: string;
    route?: string;
    path?: string;
    status?: number;
    ok: boolean;
    durationMs: number;
    startTime: string;
  };
  /** From the first span to the end of the last one. */
  durationMs: number;
  spanCount: number;
  errorCount: number;
  services: string[];
  /** Upstreams the gateway called (its `gateway.upstream` attribute). */
  upstreams: string[];
  /** The deepest failed span: usually where the failure started. */
  cause?: { spanId: string; service: string; name: string; kind: SpanKindName; message: string };
  spans: SpanSummary[];
  grafanaUrl?: string;
  notes?: string[];
  /** Request lookups: other traces carrying the same request ID, newest first. */
  otherTraceIds?: string[];
}

/** A huge trace would make an unreadable waterfall and a heavy response; Grafana has the rest. */
export const MAX_SUMMARY_SPANS = 2_000;

/** Attributes worth showing to support staff; others (db statements, payloads) stay in Tempo. */
const KEY_ATTRIBUTE_PREFIXES = ['http.', 'url.', 'server.', 'client.address', 'network.protocol.', 'error.', 'gateway.', 'rpc.', 'db.system', 'db.operation', 'db.namespace', 'db.name', 'messaging.', 'peer.service', 'user_agent.original', 'exception.type'];
const MAX_ATTRIBUTE_LENGTH = 256;

function keyAttributes(attributes: Readonly<Record<string, unknown>>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const key of Object.keys(attributes).sort()) {
    if (!KEY_ATTRIBUTE_PREFIXES.some((p) => key.startsWith(p))) continue;
    const value = attributes[key];
    if (typeof value === 'number' || typeof value === 'boolean') out[key] = value;
    else if (value !== undefined && value !== null) {
      const text = Array.isArray(value) ? value.join(', ') : String(value);
      out[key] = text.length > MAX_ATTRIBUTE_LENGTH ? `${text.slice(0, MAX_ATTRIBUTE_LENGTH)}…` : text;
    }
  }
  return out;
}

function errorMessage(span: SpanData): string | undefined {
  if (span.status !== 'ERROR') return undefined;
  if (span.statusMessage) return span.statusMessage;
  const exception = span.events.find((e) => e.name === 'exception');
  const message = exception?.attributes['exception.message'];
  if (typeof message === 'string' && message) return message;
  // HTTP instrumentations mark 5xx spans failed without a message.
  const status = httpStatus(span);
  if (status !== undefined && status >= 400) return `answered ${status}`;
  const type = span.attributes['error.type'];
  return type !== undefined ? `error.type=${String(type)}` : 'failed (no message recorded)';
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

function httpStatus(span: SpanData): number | undefined {
  const s = span.attributes['http.response.status_code'] ?? span.attributes['http.status_code'];
  const n = typeof s === 'string' ? Number(s) : s;
  return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export interface GrafanaLink {
  url: string;
  datasourceUid: string;
}

/** Builds the support summary of one trace. `spans` must be non-empty and of one trace. */
export function buildSummary(traceId: string, spans: readonly SpanData[], source: TraceSummary['source'], grafana?: GrafanaLink): TraceSummary {
  const byId = new Map<string, SpanData>();
  for (const s of spans) if (!byId.has(s.spanId)) byId.set(s.spanId, s);
  const unique = [...byId.values()].sort((a, b) => a.startMs - b.startMs);

  // Roots: no parent, or a parent that is not here (a caller's span, or one evicted/not exported).
  const children = new Map<string, SpanData[]>();
  const roots: SpanData[] = [];
  for (const s of unique) {
    if (s.parentSpanId !== undefined && byId.has(s.parentSpanId)) {
      let list = children.get(s.parentSpanId);
      if (list === undefined) children.set(s.parentSpanId, (list = []));
      list.push(s);
    } else roots.push(s);
  }
  // Data from Tempo is not ours: a parent cycle must not hide the trace or loop forever.
  if (roots.length === 0) roots.push(unique[0]!);

  const traceStart = unique[0]!.startMs;
  let traceEnd = traceStart;
  for (const s of unique) traceEnd = Math.max(traceEnd, s.startMs + s.durationMs);

  // Depth-first, children in start order: the waterfall reads top to bottom in time.
  const ordered: SpanSummary[] = [];
  const stack: Array<{ span: SpanData; depth: number }> = roots.map((span) => ({ span, depth: 0 })).reverse();
  const seen = new Set<string>();
  while (stack.length > 0 && ordered.length < MAX_SUMMARY_SPANS) {
    const { span, depth } = stack.pop()!;
    if (seen.has(span.spanId)) continue;
    seen.add(span.spanId);
    const error = errorMessage(span);
    const status = httpStatus(span);
    ordered.push({
      spanId: span.spanId,
      parentSpanId: span.parentSpanId ?? null,
      depth,
      service: span.service,
      name: span.name,
      kind: span.kind,
      startOffsetMs: round(span.startMs - traceStart),
      durationMs: round(span.durationMs),
      status: span.status,
      ...(status !== undefined ? { httpStatus: status } : {}),
      ...(error !== undefined ? { error } : {}),
      attributes: keyAttributes(span.attributes),
    });
    const kids = children.get(span.spanId);
    if (kids) for (let i = kids.length - 1; i >= 0; i--) stack.push({ span: kids[i]!, depth: depth + 1 });
  }

  const root = roots[0]!;
  const rootStatus = httpStatus(root);
  const failed = ordered.filter((s) => s.status === 'ERROR');
  let cause: SpanSummary | undefined;
  for (const s of failed) if (cause === undefined || s.depth > cause.depth) cause = s;
  const requestId = unique.map((s) => str(s.attributes['gateway.request_id'])).find((v) => v !== undefined);

  const summary: TraceSummary = {
    traceId,
    source,
    ...(requestId !== undefined ? { requestId } : {}),
    root: {
      service: root.service,
      name: root.name,
      ...(str(root.attributes['http.request.method']) ? { method: str(root.attributes['http.request.method']) } : {}),
      ...(str(root.attributes['http.route']) ? { route: str(root.attributes['http.route']) } : {}),
      ...(str(root.attributes['url.path']) ? { path: str(root.attributes['url.path']) } : {}),
      ...(rootStatus !== undefined ? { status: rootStatus } : {}),
      ok: root.status !== 'ERROR' && (rootStatus === undefined || rootStatus < 500),
      durationMs: round(root.durationMs),
      startTime: new Date(root.startMs).toISOString(),
    },
    durationMs: round(traceEnd - traceStart),
    spanCount: unique.length,
    errorCount: unique.filter((s) => s.status === 'ERROR').length,
    services: [...new Set(unique.map((s) => s.service))],
    upstreams: [...new Set(unique.map((s) => str(s.attributes['gateway.upstream'])).filter((u): u is string => u !== undefined))],
    ...(cause ? { cause: { spanId: cause.spanId, service: cause.service, name: cause.name, kind: cause.kind, message: cause.error ?? '' } } : {}),
    spans: ordered,
  };
  if (grafana) summary.grafanaUrl = grafanaExploreUrl(grafana.url, grafana.datasourceUid, traceId, traceStart, traceEnd);
  const notes: string[] = [];
  if (roots.length > 1) notes.push(`${roots.length} spans have no parent in this trace: parts of it are missing (not exported, not sampled by a service, or evicted).`);
  if (unique.length > ordered.length) notes.push(`The trace has ${unique.length} spans; only the first ${ordered.length} are listed. Open it in Grafana for the rest.`);
  if (notes.length > 0) summary.notes = notes;
  return summary;
}

/**
 * Grafana Explore deep link for a trace: the `panes` JSON, whose datasource must be the
 * datasource uid as a string (an object is ignored and Explore opens the default datasource).
 * The time range brackets the trace so Grafana's "use time range" for trace IDs still finds it.
 */
export function grafanaExploreUrl(grafanaUrl: string, datasourceUid: string, traceId: string, startMs: number, endMs: number): string {
  const margin = 5 * 60_000;
  const panes = {
    trace: {
      datasource: datasourceUid,
      queries: [{ refId: 'A', datasource: { type: 'tempo', uid: datasourceUid }, queryType: 'traceql', query: traceId }],
      range: { from: String(Math.floor(startMs - margin)), to: String(Math.ceil(endMs + margin)) },
    },
  };
  return `${grafanaUrl.replace(/\/+$/, '')}/explore?schemaVersion=1&panes=${encodeURIComponent(JSON.stringify(panes))}`;
}
