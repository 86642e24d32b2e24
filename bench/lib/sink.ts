// A local OTLP/HTTP sink: accepts traces, metrics and logs, counts spans and bytes, keeps nothing else.
//
// Each target exports to its own path prefix (OTEL_EXPORTER_OTLP_ENDPOINT=http://sink/<key>, so the
// SDK posts to /<key>/v1/traces), which attributes every byte and span to the target and round
// that sent it without relying on timing.
//
// Spans are counted without a protobuf library: the walker below follows the three nested
// length-delimited fields ExportTraceServiceRequest.resource_spans(1) → ResourceSpans.scope_spans(2)
// → ScopeSpans.spans(2) and counts Span messages. That keeps the sink cheap (it shares the two
// cores with the target) and lets every target use its default protocol, http/protobuf.
// http/json bodies are counted by parsing the JSON.
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface SinkCounts {
  spans: number;
  /** Request bodies as received on the wire (before any gunzip), per signal. */
  traceBytes: number;
  metricBytes: number;
  logBytes: number;
  exports: number;
  /** Bodies the sink could not decode (reported so a protocol change cannot silently zero the counts). */
  badBodies: number;
}

export interface Sink {
  url: string;
  counts(key: string): SinkCounts;
  close(): Promise<void>;
  /** While on, trace exports are answered 503 (a failing collector, for the soak's fault mode). */
  setFailing(on: boolean): void;
}

function emptyCounts(): SinkCounts {
  return { spans: 0, traceBytes: 0, metricBytes: 0, logBytes: 0, exports: 0, badBodies: 0 };
}

function readVarint(buf: Buffer, pos: number): [number, number] {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++]!;
    value += (b & 0x7f) * mul; // multiplication, not shifts: lengths may exceed 2^28
    if (b < 0x80) return [value, pos];
    mul *= 128;
  }
  throw new Error('varint too long');
}

/** Calls `onLen(field, start, end)` for each length-delimited field in buf[start, end), skipping others. */
function eachLenField(buf: Buffer, start: number, end: number, onLen: (field: number, s: number, e: number) => void): void {
  let pos = start;
  while (pos < end) {
    let key: number;
    [key, pos] = readVarint(buf, pos);
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) [, pos] = readVarint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let len: number;
      [len, pos] = readVarint(buf, pos);
      if (pos + len > end) throw new Error('truncated field');
      onLen(field, pos, pos + len);
      pos += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  if (pos !== end) throw new Error('field overruns message');
}

/** Number of Span messages in an OTLP ExportTraceServiceRequest (protobuf). */
export function countProtobufSpans(buf: Buffer): number {
  let spans = 0;
  eachLenField(buf, 0, buf.length, (f1, s1, e1) => {
    if (f1 !== 1) return; // resource_spans
    eachLenField(buf, s1, e1, (f2, s2, e2) => {
      if (f2 !== 2) return; // scope_spans
      eachLenField(buf, s2, e2, (f3) => {
        if (f3 === 2) spans++; // spans
      });
    });
  });
  return spans;
}

interface JsonTraces {
  resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: unknown[] }> }>;
}

export function countJsonSpans(text: string): number {
  const body = JSON.parse(text) as JsonTraces;
  let spans = 0;
  for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
  return spans;
}

export async function startSink(): Promise<Sink> {
  const byKey = new Map<string, SinkCounts>();
  let failing = false;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const wire = Buffer.concat(chunks);
      const url = req.url ?? '/';
      const m = /^\/([^/]+)\/v1\/(traces|metrics|logs)$/.exec(url);
      const json = String(req.headers['content-type'] ?? '').includes('json');
      const reply = () => res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : '');
      if (!m) {
        res.writeHead(404).end();
        return;
      }
      if (failing && m[2] === 'traces') {
        res.writeHead(503).end();
        return;
      }
      const key = m[1]!;
      let c = byKey.get(key);
      if (!c) byKey.set(key, (c = emptyCounts()));
      if (m[2] === 'metrics') c.metricBytes += wire.length;
      else if (m[2] === 'logs') c.logBytes += wire.length;
      else {
        c.traceBytes += wire.length;
        c.exports++;
        try {
          const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(wire) : wire;
          c.spans += json ? countJsonSpans(body.toString('utf8')) : countProtobufSpans(body);
        } catch {
          c.badBodies++;
        }
      }
      reply();
    });
  });
  // Exporters keep connections alive; the default 5 s keep-alive is shorter than their idle gaps.
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    counts: (key) => ({ ...(byKey.get(key) ?? emptyCounts()) }),
    setFailing: (on) => {
      failing = on;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
