import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { rawRequest } from '../helpers/raw.js';
import { rawHeaderValues, startUpstream, type RecordedRequest, type TestUpstream } from '../helpers/upstream.js';

/**
 * W3C Trace Context Level 2 through the real gateway: what a caller sends (raw header lines) and
 * exactly which header lines reach the upstream.
 */

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';
const V00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-3])$/;

let upstream: TestUpstream;
let gateway: RunningGateway;
let counter = 0;

beforeAll(async () => {
  upstream = await startUpstream();
  gateway = await startGateway(configFor([{ name: 'svc', prefix: '/svc', url: upstream.url }]));
});
afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
});

async function through(headerLines: string[]): Promise<{ status: number; traceId: string; traceresponse: string; up: RecordedRequest }> {
  const rid = `conf-${++counter}`;
  const res = await rawRequest(gateway.port, '/svc/x', [`X-Request-ID: ${rid}`, ...headerLines]);
  const up = upstream.requests.find((r) => r.headers['x-request-id'] === rid)!;
  return { status: res.status, traceId: res.headers['x-trace-id']!, traceresponse: res.headers.traceresponse!, up };
}

function forwarded(up: RecordedRequest) {
  const tp = rawHeaderValues(up, 'traceparent');
  expect(tp).toHaveLength(1);
  const m = V00.exec(tp[0]!);
  expect(m, tp[0]).not.toBeNull();
  return { traceId: m![1]!, parentId: m![2]!, flags: m![3]!, tracestate: rawHeaderValues(up, 'tracestate') };
}

describe('traceparent', () => {
  // [description, header lines, continued?, flags the upstream must see]
  const cases: Array<[string, string[], boolean, string]> = [
    ['version 00, sampled', [`traceparent: 00-${T}-${P}-01`], true, '01'],
    ['version 00, sampled + random', [`traceparent: 00-${T}-${P}-03`], true, '03'],
    ['version 00, not sampled (parent-based sampler follows)', [`traceparent: 00-${T}-${P}-00`], true, '00'],
    ['version 00, random only', [`traceparent: 00-${T}-${P}-02`], true, '02'],
    ['version 00, unknown flag bits are not propagated', [`traceparent: 00-${T}-${P}-ff`], true, '03'],
    ['header name in other casing', [`TraceParent: 00-${T}-${P}-01`], true, '01'],
    ['surrounding spaces and tabs (OWS)', [`traceparent: \t 00-${T}-${P}-01 \t`], true, '01'],
    ['future version, same length', [`traceparent: 01-${T}-${P}-01`], true, '01'],
    ['future version with more fields', [`traceparent: cc-${T}-${P}-01-what-the-future-will-be-like`], true, '01'],
    ['future version, flags not followed by a dash', [`traceparent: cc-${T}-${P}-01.what`], false, '03'],
    ['future version, too short', [`traceparent: cc-${T}-${P}-1`], false, '03'],
    ['version ff', [`traceparent: ff-${T}-${P}-01`], false, '03'],
    ['version 00 with a trailing field', [`traceparent: 00-${T}-${P}-01-00`], false, '03'],
    ['non-hex version', [`traceparent: 0g-${T}-${P}-01`], false, '03'],
    ['upper-case trace-id', [`traceparent: 00-${T.toUpperCase()}-${P}-01`], false, '03'],
    ['upper-case flags', [`traceparent: 00-${T}-${P}-0A`], false, '03'],
    ['trace-id too short', [`traceparent: 00-${T.slice(1)}-${P}-01`], false, '03'],
    ['parent-id too long', [`traceparent: 00-${T}-${P}a-01`], false, '03'],
    ['all-zero trace-id', [`traceparent: 00-${'0'.repeat(32)}-${P}-01`], false, '03'],
    ['all-zero parent-id', [`traceparent: 00-${T}-${'0'.repeat(16)}-01`], false, '03'],
    ['wrong separators', [`traceparent: 00_${T}_${P}_01`], false, '03'],
    ['empty', ['traceparent: '], false, '03'],
    ['two traceparent headers', [`traceparent: 00-${T}-${P}-01`, `traceparent: 00-${T}-${P}-01`], false, '03'],
    ['two values in one line', [`traceparent: 00-${T}-${P}-01,00-${T}-${P}-01`], false, '03'],
    ['none at all', [], false, '03'],
  ];

  it.each(cases)('%s', async (_name, lines, continued, flags) => {
    const { status, traceId, traceresponse, up } = await through([...lines, 'tracestate: vendor=v1']);
    expect(status).toBe(200);
    const out = forwarded(up);
    expect(out.flags).toBe(flags);
    expect(out.traceId).toBe(traceId);
    if (continued) {
      expect(traceId).toBe(T);
      expect(out.parentId).not.toBe(P); // the gateway's client span, not the caller's
      expect(out.tracestate).toEqual(['vendor=v1']);
    } else {
      expect(traceId).not.toBe(T);
      // tracestate never outlives the traceparent it came with.
      expect(out.tracestate).toEqual([]);
    }
    // traceresponse: version 00, the trace, the gateway's server span (the upstream's grandparent), the flags.
    const tr = V00.exec(traceresponse)!;
    expect(tr[1]).toBe(traceId);
    expect(tr[2]).not.toBe(out.parentId);
    expect(tr[3]).toBe(flags);
  });
});

describe('tracestate (with a valid traceparent)', () => {
  const key256 = `k${'a'.repeat(255)}`;
  const members = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=v${i}`).join(',');
  // [description, tracestate header lines, what the upstream must receive (null: none)]
  const cases: Array<[string, string[], string | null]> = [
    ['one member, forwarded unchanged', ['tracestate: congo=t61rcWkgMzE'], 'congo=t61rcWkgMzE'],
    ['several members keep their order', ['tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'], 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'],
    ['two header lines are combined as one list', ['tracestate: a=1', 'tracestate: b=2'], 'a=1,b=2'],
    ['optional whitespace and empty members are dropped', ['tracestate: a=1 ,\t, b=2 ,'], 'a=1,b=2'],
    ['multi-tenant key', ['tracestate: fw529a3039@dt=abc'], 'fw529a3039@dt=abc'],
    ['key of 256 characters', [`tracestate: ${key256}=1`], `${key256}=1`],
    ['value with spaces inside', ['tracestate: a=x y'], 'a=x y'],
    ['32 members', [`tracestate: ${members(32)}`], members(32)],
    ['33 members: discarded whole', [`tracestate: ${members(33)}`], null],
    ['key of 257 characters: discarded whole', [`tracestate: ${key256}a=1,b=2`], null],
    ['upper-case key: discarded whole', ['tracestate: a=1,Bad=2'], null],
    ['key starting with "_": discarded whole', ['tracestate: _a=1'], null],
    ['"=" inside a value: discarded whole', ['tracestate: a=1=2'], null],
    ['missing "=": discarded whole', ['tracestate: a=1,b'], null],
    ['duplicate keys: discarded whole', ['tracestate: a=1,a=2'], null],
    ['duplicate keys across header lines: discarded whole', ['tracestate: a=1', 'tracestate: a=2'], null],
    ['empty value: discarded whole', ['tracestate: a='], null],
    ['empty header: nothing forwarded', ['tracestate: '], null],
  ];

  it.each(cases)('%s', async (_name, lines, expected) => {
    const { status, traceId, up } = await through([`traceparent: 00-${T}-${P}-01`, ...lines]);
    expect(status).toBe(200);
    expect(traceId).toBe(T); // a bad tracestate never costs the traceparent
    expect(forwarded(up).tracestate).toEqual(expected === null ? [] : [expected]);
  });

  it('truncates a list over 512 characters by whole entries, long ones first', async () => {
    const long = `big=${'x'.repeat(200)}`;
    const small = Array.from({ length: 20 }, (_, i) => `s${i}=${'y'.repeat(20)}`);
    const { up } = await through([`traceparent: 00-${T}-${P}-01`, `tracestate: ${[small[0], long, ...small.slice(1)].join(',')}`]);
    const [sent] = forwarded(up).tracestate;
    expect(sent!.length).toBeLessThanOrEqual(512);
    expect(sent).not.toContain('big=');
    expect(sent!.startsWith(`${small[0]},${small[1]}`)).toBe(true);
    for (const entry of sent!.split(',')) expect(small).toContain(entry);
  });
});

describe('property: whatever the inbound headers', () => {
  const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
  const traceparentish = fc.oneof(
    fc.tuple(hex(2), hex(32), hex(16), hex(2), fc.constantFrom('', '-', '-x', '.01', ' ')).map(([v, t, p, f, tail]) => `${v}-${t}-${p}-${f}${tail}`),
    fc.string({ maxLength: 80 }).filter((s) => !/[\r\n]/.test(s)),
    fc.constant(`00-${T}-${P}-01`),
  );
  const keyish = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9_\-*/@]{0,20}$/), fc.string({ maxLength: 10 }));
  const valueish = fc.oneof(fc.stringMatching(/^[!-+\--<>-~]{1,20}$/), fc.string({ maxLength: 10 }));
  const tracestateish = fc.array(fc.tuple(keyish, valueish).map(([k, v]) => `${k}=${v}`), { maxLength: 40 }).map((m) => m.join(','));
  const printable = (s: string) => !/[\r\n\u0000-\u0008\u000a-\u001f\u007f-\uffff]/.test(s);

  it('the upstream sees exactly one valid version-00 traceparent and a valid tracestate or none', async () => {
    const TS_KEY = /^[a-z0-9][a-z0-9_\-*/@]{0,255}$/;
    const TS_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
    await fc.assert(
      fc.asyncProperty(
        fc.array(traceparentish.filter(printable), { maxLength: 3 }),
        fc.array(tracestateish.filter(printable), { maxLength: 3 }),
        async (tps, tss) => {
          const { status, up } = await through([...tps.map((v) => `traceparent: ${v}`), ...tss.map((v) => `tracestate: ${v}`)]);
          expect(status).toBe(200);
          const out = forwarded(up);
          expect(out.tracestate.length).toBeLessThanOrEqual(1);
          if (out.tracestate.length === 1) {
            const list = out.tracestate[0]!.split(',');
            expect(list.length).toBeLessThanOrEqual(32);
            const keys = list.map((m) => m.slice(0, m.indexOf('=')));
            expect(new Set(keys).size).toBe(keys.length);
            for (const m of list) {
              const eq = m.indexOf('=');
              expect(m.slice(0, eq)).toMatch(TS_KEY);
              expect(m.slice(eq + 1)).toMatch(TS_VALUE);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('OTEL_PROPAGATORS', () => {
  it('adds B3 and Jaeger on request (opt-in) while keeping exactly one traceparent, and names unsupported ones at start-up', async () => {
    const b3 = await startGateway(configFor([{ name: 'svc', prefix: '/svc', url: upstream.url }]), { OTEL_PROPAGATORS: 'tracecontext,baggage,b3multi,jaeger,xray' });
    try {
      const warning = await b3.waitForLog((l) => l.level === 'warn' && String(l.msg).includes('"xray" is not supported'));
      expect(warning).toBeDefined();
      // A caller that only speaks B3 multi-header has its trace continued.
      const res = await rawRequest(b3.port, '/svc/b3', ['X-Request-ID: b3-in', `X-B3-TraceId: ${T}`, `X-B3-SpanId: ${P}`, 'X-B3-Sampled: 1']);
      expect(res.headers['x-trace-id']).toBe(T);
      const up = upstream.requests.find((r) => r.headers['x-request-id'] === 'b3-in')!;
      const out = forwarded(up);
      expect(out.traceId).toBe(T);
      expect(rawHeaderValues(up, 'x-b3-traceid')).toEqual([T]);
      expect(rawHeaderValues(up, 'x-b3-spanid')).toEqual([out.parentId]);
      // Jaeger: exactly one uber-trace-id, naming the same client span.
      const uber = rawHeaderValues(up, 'uber-trace-id');
      expect(uber).toHaveLength(1);
      expect(uber[0]).toMatch(new RegExp(`^${T}:${out.parentId}:0:0?1$`));
      // A caller that only speaks Jaeger has its trace continued too.
      const jres = await rawRequest(b3.port, '/svc/jaeger', ['X-Request-ID: jaeger-in', `uber-trace-id: ${T}:${P}:0:1`]);
      expect(jres.headers['x-trace-id']).toBe(T);
    } finally {
      await b3.stop();
    }
  });
});
