import { REQUEST_ID_HELP, TRACE_ID_HELP, isValidRequestId, normalizeTraceId } from './ids.js';
import type { StoreStats } from './store.js';
import { buildSummary, type GrafanaLink, type SpanData, type TraceSummary } from './summary.js';
import { TempoError, type TempoClient } from './tempo.js';

export interface LookupErrorBody {
  error: string;
  message: string;
  /** For 404s: why a trace may be missing, most likely first. */
  reasons?: string[];
}

/** An outcome other than a summary: the HTTP status and the JSON body to answer with. */
export class LookupFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: LookupErrorBody,
  ) {
    super(body.message);
  }
}

const NOT_SAMPLED = 'It was not sampled: unsampled requests still get an X-Trace-ID (and log lines with "sampled":false) but record no spans.';
const NOT_HERE = 'It never reached the gateway (check the ID for typos; an ID from another system will not be found).';

/** Where the gateway's own recent spans are read: this thread's store, or every proxy thread's. */
export interface SpanSource {
  spansOf(traceId: string): SpanData[] | Promise<SpanData[]>;
  /** Trace IDs of the request, newest first. */
  traceIdsForRequest(requestId: string): string[] | Promise<string[]>;
  stats(): StoreStats | Promise<StoreStats>;
}

export interface TraceLookupOptions {
  store: SpanSource;
  tempo?: TempoClient | undefined;
  grafana?: GrafanaLink | undefined;
}

/**
 * Resolves trace IDs and request IDs to summaries. With Tempo, the whole trace (every service)
 * comes from Tempo; without it, from the gateway's own recent spans. Request IDs this instance
 * handled recently are resolved from its store first (Tempo search cannot see the last 30 s).
 */
export class TraceLookup {
  constructor(private readonly options: TraceLookupOptions) {}

  /** Trace ID, or request ID, whichever `id` turns out to be. */
  async any(id: string): Promise<TraceSummary> {
    const traceId = normalizeTraceId(id);
    const requestId = id.trim();
    if (traceId === undefined) return this.request(requestId);
    try {
      return await this.trace(traceId);
    } catch (err) {
      // 32 hex characters can also be a caller's X-Request-ID.
      if (err instanceof LookupFailure && err.status === 404 && isValidRequestId(requestId)) {
        try {
          return await this.request(requestId);
        } catch (again) {
          if (!(again instanceof LookupFailure && again.status === 404)) throw again;
        }
      }
      throw err;
    }
  }

  async trace(input: string): Promise<TraceSummary> {
    const traceId = normalizeTraceId(input);
    if (traceId === undefined) throw new LookupFailure(400, { error: 'invalid_trace_id', message: `"${clip(input)}" is not a trace ID: ${TRACE_ID_HELP}` });
    const { store, tempo } = this.options;
    if (tempo) {
      const spans = await this.fromTempo(() => tempo.traceById(traceId));
      if (spans.length > 0) return this.summarize(traceId, spans, 'tempo');
      const local = await store.spansOf(traceId);
      if (local.length > 0) {
        const summary = this.summarize(traceId, local, 'gateway');
        summary.notes = [...(summary.notes ?? []), 'Tempo does not have this trace (yet): these are only the gateway\'s own spans. Spans reach Tempo a few seconds after a request; look again shortly for the other services.'];
        return summary;
      }
      throw new LookupFailure(404, {
        error: 'trace_not_found',
        message: `Tempo has no trace ${traceId}.`,
        reasons: [
          'The request finished moments ago: spans reach Tempo a few seconds after a request. Try again shortly.',
          NOT_SAMPLED,
          'It is older than Tempo keeps traces (its retention period).',
          NOT_HERE,
        ],
      });
    }
    const local = await store.spansOf(traceId);
    if (local.length > 0) return this.summarize(traceId, local, 'gateway');
    throw new LookupFailure(404, { error: 'trace_not_found', message: `This gateway has no spans of trace ${traceId}.`, reasons: await this.storeReasons() });
  }

  async request(input: string): Promise<TraceSummary> {
    const requestId = input.trim();
    if (!isValidRequestId(requestId)) {
      throw new LookupFailure(400, { error: 'invalid_id', message: `"${clip(input)}" is neither a trace ID nor a request ID: ${TRACE_ID_HELP}; ${REQUEST_ID_HELP}` });
    }
    const { store, tempo } = this.options;
    let traceIds = await store.traceIdsForRequest(requestId);
    if (traceIds.length === 0 && tempo) traceIds = await this.fromTempo(() => tempo.searchRequestId(requestId));
    const [newest, ...others] = traceIds;
    if (newest === undefined) {
      const reasons = tempo
        ? [
            `Tempo search does not see the last 30 seconds and looks back ${tempo.searchHours} hours: for a very recent request, try again in a minute or look up its X-Trace-ID instead.`,
            NOT_SAMPLED,
            'It is older than Tempo keeps traces (its retention period).',
            'The ID is not the X-Request-ID the gateway answered with (an invalid inbound X-Request-ID is replaced by a new UUID).',
          ]
        : [...(await this.storeReasons()), 'The ID is not the X-Request-ID the gateway answered with (an invalid inbound X-Request-ID is replaced by a new UUID).'];
      throw new LookupFailure(404, { error: 'request_not_found', message: `No trace found for request ID ${requestId}.`, reasons });
    }
    const summary = await this.trace(newest);
    summary.requestId = requestId;
    if (others.length > 0) summary.otherTraceIds = others;
    return summary;
  }

  private summarize(traceId: string, spans: SpanData[], source: TraceSummary['source']): TraceSummary {
    return buildSummary(traceId, spans, source, this.options.grafana);
  }

  private async fromTempo<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof TempoError)) throw err;
      const error = err.kind === 'unreachable' ? 'tempo_unreachable' : err.kind === 'bad_status' ? 'tempo_error' : 'tempo_bad_response';
      throw new LookupFailure(502, { error, message: `${err.message}; the trace cannot be looked up until Tempo answers.` });
    }
  }

  private async storeReasons(): Promise<string[]> {
    const s = await this.options.store.stats();
    const since = s.oldestStartMs !== undefined ? `; it currently reaches back to ${new Date(s.oldestStartMs).toISOString()}` : '';
    return [
      NOT_SAMPLED,
      `It is older than what this gateway keeps: its most recent ${s.maxSpans} spans / ${Math.round(s.maxBytes / 1048576)} MiB, oldest evicted first${since}.`,
      'Another gateway instance handled it: each instance keeps only its own spans (configure admin.tempoUrl to search all of them).',
      NOT_HERE,
    ];
  }
}

/** Echoes at most a short, printable prefix of what the caller sent. */
function clip(input: string): string {
  const printable = input.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 80 ? `${printable.slice(0, 80)}…` : printable;
}
