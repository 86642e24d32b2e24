import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AccessLog, ACCESS_MESSAGE, type AccessRecord } from '../../src/logging/access-log.js';
import { createLogger } from '../../src/logging/logger.js';

/** A pino destination that keeps every line written to it. */
function capture(): { stream: Writable & { write(s: string): boolean }; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  }) as Writable & { write(s: string): boolean };
  // pino writes through .write(string) synchronously; collect it as-is.
  stream.write = (s: string) => (lines.push(s), true);
  return { stream, lines };
}

/** What the gateway would write with pino's generic path: the reference the encoder must match. */
function viaPino(r: AccessRecord, level = 'info'): string {
  const { stream, lines } = capture();
  createLogger({ level, destination: stream }).info(
    {
      ...r.log,
      method: r.method,
      path: r.path,
      route: r.route,
      status: r.status,
      duration_ms: r.duration_ms,
      upstream: r.upstream,
      upstream_status: r.upstream_status,
      error_type: r.error_type,
      bytes_in: r.bytes_in,
      bytes_out: r.bytes_out,
      client_address: r.client_address,
      sampled: r.sampled,
    },
    ACCESS_MESSAGE,
  );
  return lines.join('');
}

function viaEncoder(r: AccessRecord, level = 'info'): string {
  const { stream, lines } = capture();
  const log = new AccessLog(createLogger({ level, destination: stream }));
  log.write(r);
  log.flush();
  return lines.join('');
}

/** Both lines carry their own timestamp; compare everything else byte for byte. */
function withoutTime(line: string): string {
  return line.replace(/"time":"[^"]+"/, '"time":"T"');
}

const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${n}}$`));
const anyText = fc.string({ unit: 'binary', maxLength: 80 });

const record: fc.Arbitrary<AccessRecord> = fc.record({
  log: fc.record({ trace_id: hex(32), span_id: hex(16), trace_flags: fc.constantFrom('00', '01', '02', '03'), request_id: anyText }),
  method: fc.constantFrom('GET', 'POST', '_OTHER'),
  path: anyText,
  route: fc.option(anyText, { nil: undefined }),
  status: fc.integer({ min: 100, max: 599 }),
  duration_ms: fc.double({ min: 0, max: 1e6, noNaN: true }).map((d) => Math.round(d * 1000) / 1000),
  upstream: fc.option(anyText, { nil: undefined }),
  upstream_status: fc.option(fc.integer({ min: 100, max: 599 }), { nil: undefined }),
  error_type: fc.option(fc.constantFrom('connect', 'timeout', 'client_aborted'), { nil: undefined }),
  bytes_in: fc.nat(),
  bytes_out: fc.nat(),
  client_address: fc.option(fc.constantFrom('127.0.0.1', '::1', '::ffff:10.0.0.1'), { nil: undefined }),
  sampled: fc.boolean(),
});

describe('access log encoder', () => {
  it('writes the same bytes as pino would for the same record (random records, client-controlled text included)', () => {
    fc.assert(
      fc.property(record, (r) => {
        const expected = withoutTime(viaPino(r));
        const actual = withoutTime(viaEncoder(r));
        expect(actual).toBe(expected);
        // And the line is one valid JSON object per line.
        expect(actual.endsWith('}\n')).toBe(true);
        expect(JSON.parse(actual).path).toBe(r.path);
      }),
      { numRuns: 500 },
    );
  });

  it('writes nothing when the logger level is above info', () => {
    const r = fc.sample(record, 1)[0]!;
    expect(viaPino(r, 'warn')).toBe('');
    expect(viaEncoder(r, 'warn')).toBe('');
  });

  it('hands the lines of one event-loop turn to the destination together, in order', async () => {
    const { stream, lines } = capture();
    const log = new AccessLog(createLogger({ level: 'info', destination: stream }));
    const records = fc.sample(record, 5);
    for (const r of records) log.write(r);
    expect(lines).toHaveLength(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    const written = lines[0]!.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { request_id: string });
    expect(written.map((l) => l.request_id)).toEqual(records.map((r) => r.log.request_id));
  });

  it('stamps the current time in pino ISO format', () => {
    const r = fc.sample(record, 1)[0]!;
    const before = Date.now();
    const line = JSON.parse(viaEncoder(r)) as { time: string; level: string; service: string };
    expect(line.level).toBe('info');
    expect(line.service).toBe(process.env.OTEL_SERVICE_NAME ?? 'tracing-gateway');
    expect(Date.parse(line.time)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(line.time)).toBeLessThanOrEqual(Date.now());
    expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});
