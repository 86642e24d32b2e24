import { describe, it, expect } from 'vitest';
import {
  ROOT_CONTEXT,
  TraceFlags,
  defaultTextMapGetter,
  defaultTextMapSetter,
  trace,
  type Context,
  type SpanContext,
  type TextMapSetter,
} from '@opentelemetry/api';
import { TraceState as CoreTraceState, suppressTracing } from '@opentelemetry/core';
import {
  DEFAULT_MAX_TRACESTATE_LENGTH,
  TRACE_FLAG_RANDOM,
  TRACE_FLAG_SAMPLED,
  TraceState,
  W3CTraceContextPropagator,
  formatTraceparent,
  isValidTracestateKey,
  isValidTracestateValue,
  parseTraceparent,
  parseTracestate,
} from '../../src/tracing/w3c-propagator.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const tp = (flags = '01', version = '00', traceId = TRACE_ID, spanId = SPAN_ID): string =>
  `${version}-${traceId}-${spanId}-${flags}`;

// ---------------------------------------------------------------------------
// traceparent
// ---------------------------------------------------------------------------

describe('parseTraceparent: valid values', () => {
  const cases: Array<[name: string, input: string | string[], flags: number]> = [
    ['spec example, sampled', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', 0x01],
    ['spec example, not sampled', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00', 0x00],
    ['random flag only (Level 2)', tp('02'), TRACE_FLAG_RANDOM],
    ['sampled + random', tp('03'), TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM],
    ['v00 unknown flag bits are cleared (09 -> 01)', tp('09'), 0x01],
    ['v00 flags ff -> only known bits kept', tp('ff'), 0x03],
    ['v00 flags 04 (reserved bit only) -> 00', tp('04'), 0x00],
    ['future version, exactly 55 chars', tp('01', 'cc'), 0x01],
    ['future version with extra fields', `${tp('01', 'cc')}-what-the-future-will-be-like`, 0x01],
    ['future version with an empty extra field', `${tp('03', 'cc')}-`, 0x03],
    ['future version 01 with extension', `${tp('02', '01')}-0123`, 0x02],
    ['future version fe', tp('01', 'fe'), 0x01],
    ['future version, unknown flag bits cleared', `${tp('ff', 'cc')}-x`, 0x03],
    ['leading space (OWS)', ` ${tp()}`, 0x01],
    ['leading tab (OWS)', `\t${tp()}`, 0x01],
    ['trailing space (OWS)', `${tp()} `, 0x01],
    ['trailing tab (OWS)', `${tp()}\t`, 0x01],
    ['mixed OWS on both sides', `\t  ${tp()} \t`, 0x01],
    ['array with a single element', [tp('03')], 0x03],
    ['trace-id with a single non-zero digit', tp('01', '00', '00000000000000000000000000000001'), 0x01],
  ];
  it.each(cases)('%s', (_name, input, flags) => {
    const parsed = parseTraceparent(input);
    expect(parsed).toBeDefined();
    expect(parsed?.traceFlags).toBe(flags);
    expect(parsed?.spanId).toBe(SPAN_ID);
    expect(parsed?.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('returns the ids exactly as received', () => {
    expect(parseTraceparent(tp('01'))).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
  });
});

describe('parseTraceparent: invalid values', () => {
  const upperTrace = TRACE_ID.toUpperCase();
  const cases: Array<[name: string, input: unknown]> = [
    ['undefined', undefined],
    ['empty string', ''],
    ['OWS only', ' \t '],
    ['empty array', []],
    ['two headers as array', [tp('01'), tp('01')]],
    ['two different headers as array', [tp('01'), tp('00', '00', '12345678901234567890123456789012')]],
    ['array with a non-string', [42]],
    ['number', 42],
    ['Node-joined duplicates ", "', `${tp()}, ${tp()}`],
    ['joined duplicates ","', `${tp()},${tp()}`],
    ['future version joined with ", " after an extension', `${tp('01', 'cc')}-x, ${tp()}`],
    ['version ff', tp('01', 'ff')],
    ['version FF', tp('01', 'FF')],
    ['upper-case future version CC', tp('01', 'CC')],
    ['upper-case version hex 0A', tp('01', '0A')],
    ['version with illegal char .0', tp('01', '.0')],
    ['version with illegal char 0.', tp('01', '0.')],
    ['version with non-hex g0', tp('01', 'g0')],
    ['version too long (000)', tp('01', '000')],
    ['version too short (0)', tp('01', '0')],
    ['upper-case trace-id', tp('01', '00', upperTrace)],
    ['one upper-case char in trace-id', tp('01', '00', `${TRACE_ID.slice(0, 31)}A`)],
    ['upper-case parent-id', tp('01', '00', TRACE_ID, SPAN_ID.toUpperCase())],
    ['upper-case flags 0A', tp('0A')],
    ['upper-case flags FF', tp('FF')],
    ['non-hex in trace-id', tp('01', '00', `.${TRACE_ID.slice(1)}`)],
    ['non-hex at end of trace-id', tp('01', '00', `${TRACE_ID.slice(0, 31)}g`)],
    ['non-hex in parent-id', tp('01', '00', TRACE_ID, `${SPAN_ID.slice(0, 15)}.`)],
    ['non-hex flags .0', tp('.0')],
    ['non-hex flags 0g', tp('0g')],
    ['trace-id too short (31)', tp('01', '00', TRACE_ID.slice(1))],
    ['trace-id too long (33)', tp('01', '00', `${TRACE_ID}1`)],
    ['parent-id too short (15)', tp('01', '00', TRACE_ID, SPAN_ID.slice(1))],
    ['parent-id too long (17)', tp('01', '00', TRACE_ID, `${SPAN_ID}1`)],
    ['flags too short (1)', tp('1')],
    ['flags too long (001)', tp('001')],
    ['all-zero trace-id', tp('01', '00', '0'.repeat(32))],
    ['all-zero parent-id', tp('01', '00', TRACE_ID, '0'.repeat(16))],
    ['all-zero trace-id in a future version', tp('01', 'cc', '0'.repeat(32))],
    ['all-zero parent-id in a future version', tp('01', 'cc', TRACE_ID, '0'.repeat(16))],
    ['v00 with extra fields', `${tp()}-what-the-future-will-be-like`],
    ['v00 with a trailing dash', `${tp()}-`],
    ['v00 with a trailing dot', `${tp()}.`],
    ['future version without dash after flags', `${tp('01', 'cc')}.what-the-future-will-be-like`],
    ['future version shorter than 55 chars', tp('1', 'cc')],
    ['future version with upper-case trace-id', tp('01', 'cc', upperTrace)],
    ['underscore delimiters', `00_${TRACE_ID}_${SPAN_ID}_01`],
    ['missing delimiter after version', `00${TRACE_ID}-${SPAN_ID}-01x`],
    ['internal space', `00 -${TRACE_ID}-${SPAN_ID}-01`],
    ['leading LF is not OWS', `\n${tp()}`],
    ['trailing CR is not OWS', `${tp()}\r`],
    ['leading NBSP is not OWS', `\u00a0${tp()}`],
    ['leading vertical tab is not OWS', `\v${tp()}`],
    ['non-ASCII digit look-alike', tp('0１')],
  ];
  it.each(cases)('%s', (_name, input) => {
    expect(parseTraceparent(input as string | string[] | undefined)).toBeUndefined();
  });
});

describe('formatTraceparent', () => {
  const cases: Array<[flags: number, expected: string]> = [
    [0x00, '00'],
    [0x01, '01'],
    [0x02, '02'],
    [0x03, '03'],
    [0x04, '00'],
    [0x09, '01'],
    [0xff, '03'],
    [0x1ff, '03'],
  ];
  it.each(cases)('flags %i -> %s (unknown bits cleared, always two lowercase hex digits)', (flags, hex) => {
    expect(formatTraceparent(TRACE_ID, SPAN_ID, flags)).toBe(`00-${TRACE_ID}-${SPAN_ID}-${hex}`);
  });

  it('produces a value that parses back to the same fields', () => {
    const value = formatTraceparent(TRACE_ID, SPAN_ID, 3);
    expect(value).toHaveLength(55);
    expect(parseTraceparent(value)).toEqual({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 3 });
  });
});

// ---------------------------------------------------------------------------
// tracestate grammar
// ---------------------------------------------------------------------------

const LCALPHA = 'abcdefghijklmnopqrstuvwxyz';
const ALL_KEY_CHARS = `${LCALPHA}0123456789_-*/@`;
const ALL_VALUE_CHARS = (() => {
  let s = '';
  for (let c = 0x20; c <= 0x7e; c++) if (c !== 0x2c && c !== 0x3d) s += String.fromCharCode(c);
  return s; // starts with a space, ends with '~'
})();

describe('tracestate key grammar (Level 2: key = ( lcalpha / DIGIT ) 0*255 ( keychar ))', () => {
  const valid: Array<[name: string, key: string]> = [
    ['single lcalpha', 'a'],
    ['single digit (allowed by Level 2)', '1'],
    ['digit first', '0abc'],
    ['every keychar', ALL_KEY_CHARS],
    ['256 chars', 'z'.repeat(256)],
    ['multi-tenant style 241@14 = 256 chars', `${'t'.repeat(241)}@${'v'.repeat(14)}`],
    ['tenant part of 242 chars (Level 1 limit gone)', `${'t'.repeat(242)}@v`],
    ['system part of 15 chars (Level 1 limit gone)', `t@${'v'.repeat(15)}`],
    ['trailing @', 'foo@'],
    ['double @', 'foo@@bar'],
    ['two @ separators', 'foo@bar@baz'],
    ['digit tenant', '001@xyz'],
    ['system part starting with a digit', 'tenant@1sys'],
  ];
  it.each(valid)('valid: %s', (_name, key) => {
    expect(isValidTracestateKey(key)).toBe(true);
    expect(parseTracestate(`${key}=v`)?.get(key)).toBe('v');
  });

  const invalid: Array<[name: string, key: string]> = [
    ['empty', ''],
    ['257 chars', 'z'.repeat(257)],
    ['241@15 = 257 chars', `${'t'.repeat(241)}@${'v'.repeat(15)}`],
    ['upper case', 'FOO'],
    ['one upper-case char', 'fOo'],
    ['leading @', '@foo'],
    ['leading _', '_foo'],
    ['leading -', '-foo'],
    ['leading *', '*foo'],
    ['leading /', '/foo'],
    ['dot', 'foo.bar'],
    ['inner space', 'foo bar'],
    ['non-ASCII', 'föo'],
    ['colon', 'foo:bar'],
  ];
  it.each(invalid)('invalid: %s', (_name, key) => {
    expect(isValidTracestateKey(key)).toBe(false);
    expect(parseTracestate(`${key}=v`)).toBeUndefined();
    // One bad member discards the whole header, valid members included.
    expect(parseTracestate(`foo=1,${key}=v,bar=2`)).toBeUndefined();
  });

  it('space between key and "=" is invalid ("foo =1")', () => {
    expect(parseTracestate('foo =1')).toBeUndefined();
  });
});

describe('tracestate value grammar (value = 0*255(chr) nblk-chr)', () => {
  const valid: Array<[name: string, member: string, key: string, value: string]> = [
    ['simple', 'foo=1', 'foo', '1'],
    ['every allowed char incl. leading space', `k=${ALL_VALUE_CHARS}`, 'k', ALL_VALUE_CHARS],
    ['256 chars', `k=${'x'.repeat(256)}`, 'k', 'x'.repeat(256)],
    ['leading spaces are kept', 'k=  x', 'k', '  x'],
    ['inner spaces are kept', 'k=a b  c', 'k', 'a b  c'],
    ['trailing space is OWS, not part of the value', 'foo=1 ', 'foo', '1'],
    ['trailing tab is OWS', 'foo=1\t', 'foo', '1'],
    ['trailing spaces + tabs are OWS', 'foo=bar \t \t', 'foo', 'bar'],
    ['base64 padding-free', 'congo=t61rcWkgMzE', 'congo', 't61rcWkgMzE'],
    ['value with @, :, ;, /', 'k=a@b:c;d/e', 'k', 'a@b:c;d/e'],
  ];
  it.each(valid)('valid: %s', (_name, member, key, value) => {
    const ts = parseTracestate(member);
    expect(ts?.get(key)).toBe(value);
    expect(ts?.serialize()).toBe(`${key}=${value}`);
  });

  const invalid: Array<[name: string, member: string]> = [
    ['empty value', 'foo='],
    ['space-only value', 'foo= '],
    ['no "="', 'foo'],
    ['"=" in value', 'foo=a=b'],
    ['value of just "="', 'foo=='],
    ['257 chars', `k=${'x'.repeat(257)}`],
    ['tab inside value', 'k=a\tb'],
    ['LF inside value', 'k=a\nb'],
    ['DEL (0x7f)', 'k=a\u007f'],
    ['control char (0x01)', 'k=a\u0001b'],
    ['non-ASCII', 'k=é'],
  ];
  it.each(invalid)('invalid: %s', (_name, member) => {
    expect(parseTracestate(member)).toBeUndefined();
    expect(parseTracestate(`foo=1,${member}`)).toBeUndefined();
  });

  it('"," always ends a member, so it cannot be in a value', () => {
    // "k=a,b" is two members; the second one ("b") has no "=" -> invalid.
    expect(parseTracestate('k=a,b')).toBeUndefined();
    expect(isValidTracestateValue('a,b')).toBe(false);
    expect(isValidTracestateValue('a=b')).toBe(false);
    expect(isValidTracestateValue('ab ')).toBe(false);
    expect(isValidTracestateValue(' ab')).toBe(true);
  });
});

describe('tracestate list rules', () => {
  const members = (n: number, from = 1): string[] =>
    Array.from({ length: n }, (_, i) => `bar${String(i + from).padStart(2, '0')}=${String(i + from).padStart(2, '0')}`);

  it('keeps order exactly as received (spec example)', () => {
    const ts = parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    expect(ts?.serialize()).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    expect(ts?.keys()).toEqual(['rojo', 'congo']);
  });

  const owsAndEmpty: Array<[name: string, input: string | string[], expected: string]> = [
    ['OWS around members', 'foo=1 \t , \t bar=2, \t baz=3', 'foo=1,bar=2,baz=3'],
    ['tabs around members', 'foo=1\t \t,\t \tbar=2,\t \tbaz=3', 'foo=1,bar=2,baz=3'],
    ['leading space', ' foo=1', 'foo=1'],
    ['leading tab', '\tfoo=1', 'foo=1'],
    ['OWS both sides', '\t foo=1 \t', 'foo=1'],
    ['empty members', ',,foo=1,,bar=2,', 'foo=1,bar=2'],
    ['whitespace-only members', 'foo=1, ,\t,bar=2', 'foo=1,bar=2'],
    ['empty header', '', ''],
    ['whitespace-only header', '  \t ', ''],
    ['commas only', ', , ,', ''],
    ['several headers combined in order', ['foo=1,bar=2', 'rojo=1,congo=2', 'baz=3'], 'foo=1,bar=2,rojo=1,congo=2,baz=3'],
    ['empty header first', ['', 'foo=1'], 'foo=1'],
    ['empty header last', ['foo=1', ''], 'foo=1'],
    ['headers with OWS', [' foo=1 ', '\tbar=2'], 'foo=1,bar=2'],
    ['single-element array', ['foo=1'], 'foo=1'],
    ['empty array', [], ''],
  ];
  it.each(owsAndEmpty)('%s', (_name, input, expected) => {
    const ts = parseTracestate(input);
    expect(ts).toBeDefined();
    expect(ts?.serialize()).toBe(expected);
  });

  const duplicates: Array<[name: string, input: string | string[]]> = [
    ['same key, same value', 'foo=1,foo=1'],
    ['same key, different value', 'foo=1,foo=2'],
    ['duplicate across headers, same value', ['foo=1', 'foo=1']],
    ['duplicate across headers, different value', ['foo=1', 'foo=2']],
    ['duplicate far apart', 'foo=1,bar=2,baz=3,foo=4'],
    ['duplicate @ keys', 't@v=1,t@v=2'],
  ];
  it.each(duplicates)('duplicate keys discard the whole header: %s', (_name, input) => {
    expect(parseTracestate(input)).toBeUndefined();
  });

  it('keys differing only by case are different keys', () => {
    expect(parseTracestate('foo=1,FOO=2')).toBeUndefined(); // FOO is invalid, not a duplicate
    expect(parseTracestate('foo=1,fo=2')?.size).toBe(2);
  });

  it('32 members are accepted (split over several headers)', () => {
    const m = members(32);
    const ts = parseTracestate([m.slice(0, 10).join(','), m.slice(10, 20).join(','), m.slice(20, 30).join(','), m.slice(30).join(',')]);
    expect(ts?.size).toBe(32);
    expect(ts?.get('bar01')).toBe('01');
    expect(ts?.get('bar32')).toBe('32');
    expect(ts?.serialize()).toBe(m.join(','));
  });

  it('33 members discard the whole header', () => {
    const m = members(33);
    expect(parseTracestate(m.join(','))).toBeUndefined();
    expect(parseTracestate([m.slice(0, 30).join(','), m.slice(30).join(',')])).toBeUndefined();
  });

  it('empty members do not count toward the 32-member limit', () => {
    const ts = parseTracestate(`,${members(32).join(', ,')},,`);
    expect(ts?.size).toBe(32);
  });

  it('rejects non-string array elements', () => {
    expect(parseTracestate(['foo=1', 7 as unknown as string])).toBeUndefined();
    expect(parseTracestate(undefined)).toBeUndefined();
    expect(parseTracestate(42 as unknown as string)).toBeUndefined();
  });
});

describe('tracestate length limit (512): truncate whole entries, never discard', () => {
  // n entries of exactly `len` chars: "kNN=" + value padding.
  const entry = (i: number, len: number): string => {
    const key = `k${String(i).padStart(2, '0')}`;
    return `${key}=${'x'.repeat(len - key.length - 1)}`;
  };

  it('exactly 512 chars is kept in full', () => {
    // 8 entries of 63 chars + 7 commas = 511; make the first one 64 -> 512
    const list = [entry(0, 64), ...Array.from({ length: 7 }, (_, i) => entry(i + 1, 63))];
    const header = list.join(',');
    expect(header).toHaveLength(512);
    const ts = parseTracestate(header);
    expect(ts?.serialize()).toBe(header);
    expect(ts?.size).toBe(8);
  });

  it('513 chars of small entries: right-most entries are removed', () => {
    const list = [entry(0, 65), ...Array.from({ length: 7 }, (_, i) => entry(i + 1, 63))];
    const header = list.join(',');
    expect(header).toHaveLength(513);
    const ts = parseTracestate(header);
    expect(ts).toBeDefined();
    expect(ts?.size).toBe(7);
    expect(ts?.serialize()).toBe(list.slice(0, 7).join(','));
    expect(ts?.get('k07')).toBeUndefined();
  });

  it('entries over 128 chars are removed first, then from the right', () => {
    const big = entry(1, 200); // > 128
    const list = [entry(0, 100), big, entry(2, 100), entry(3, 100), entry(4, 100)];
    const header = list.join(','); // 600 + 4 = 604
    const ts = parseTracestate(header);
    // Dropping the one 200-char entry brings it to 403 <= 512: nothing else is removed.
    expect(ts?.serialize()).toBe([entry(0, 100), entry(2, 100), entry(3, 100), entry(4, 100)].join(','));
  });

  it('several large entries: removed right-to-left only until it fits', () => {
    const list = [entry(0, 150), entry(1, 150), entry(2, 150), entry(3, 150)]; // 603
    const ts = parseTracestate(list.join(','));
    expect(ts?.serialize()).toBe([entry(0, 150), entry(1, 150), entry(2, 150)].join(',')); // 452
  });

  it('OWS does not count: a header over 512 only because of whitespace is kept whole', () => {
    const list = Array.from({ length: 8 }, (_, i) => entry(i, 60)); // 480 + 7 = 487
    const header = list.join(' \t , \t ');
    expect(header.length).toBeGreaterThan(512);
    expect(parseTracestate(header)?.serialize()).toBe(list.join(','));
  });

  it('maxLength is configurable (Infinity keeps every valid list)', () => {
    const list = Array.from({ length: 32 }, (_, i) => entry(i, 200));
    const ts = parseTracestate(list.join(','), Number.POSITIVE_INFINITY);
    expect(ts?.size).toBe(32);
    expect(parseTracestate(list.join(','))!.serialize().length).toBeLessThanOrEqual(DEFAULT_MAX_TRACESTATE_LENGTH);
  });

  it('the propagator applies its configured limit on extract', () => {
    const list = Array.from({ length: 10 }, (_, i) => entry(i, 100));
    const carrier = { traceparent: tp(), tracestate: list.join(',') };
    const strict = new W3CTraceContextPropagator();
    const roomy = new W3CTraceContextPropagator({ maxTracestateLength: 4096 });
    const a = trace.getSpanContext(strict.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
    const b = trace.getSpanContext(roomy.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
    expect(a?.traceState?.serialize()).toBe(list.slice(0, 5).join(',')); // 5*100+4 = 504
    expect(b?.traceState?.serialize()).toBe(list.join(','));
  });
});

// ---------------------------------------------------------------------------
// TraceState class
// ---------------------------------------------------------------------------

describe('TraceState', () => {
  const base = (): TraceState => parseTracestate('rojo=1,congo=2,baz=3')!;

  it('get returns values and undefined for missing keys', () => {
    const ts = base();
    expect(ts.get('congo')).toBe('2');
    expect(ts.get('nope')).toBeUndefined();
  });

  it('set of a new key adds it to the front and leaves the original unchanged', () => {
    const ts = base();
    const next = ts.set('new', 'v');
    expect(next.serialize()).toBe('new=v,rojo=1,congo=2,baz=3');
    expect(ts.serialize()).toBe('rojo=1,congo=2,baz=3');
  });

  it('set of an existing key updates it and moves it to the front', () => {
    expect(base().set('baz', 'x').serialize()).toBe('baz=x,rojo=1,congo=2');
    expect(base().set('congo', '2').serialize()).toBe('congo=2,rojo=1,baz=3');
  });

  const badSets: Array<[name: string, key: string, value: string]> = [
    ['invalid key', 'BAD', 'v'],
    ['invalid value', 'ok', 'a=b'],
    ['empty value', 'ok', ''],
    ['value with trailing space', 'ok', 'v '],
    ['key too long', 'k'.repeat(257), 'v'],
  ];
  it.each(badSets)('set with %s returns the same instance', (_name, key, value) => {
    const ts = base();
    expect(ts.set(key, value)).toBe(ts);
  });

  it('set past 32 members drops the right-most member', () => {
    const ts = new TraceState(Array.from({ length: 32 }, (_, i) => [`k${i}`, `${i}`] as const));
    const next = ts.set('new', 'v');
    expect(next.size).toBe(32);
    expect(next.keys()[0]).toBe('new');
    expect(next.get('k31')).toBeUndefined();
    expect(next.get('k30')).toBe('30');
  });

  it('set that goes over the length limit truncates other entries, never the new one', () => {
    const ts = new TraceState([
      ['a', 'x'.repeat(200)],
      ['b', 'y'.repeat(200)],
    ]); // 403 chars
    const next = ts.set('c', 'z'.repeat(200));
    expect(next.keys()).toEqual(['c', 'a']); // 'b' (right-most, >128) is dropped
    expect(next.serialize().length).toBeLessThanOrEqual(512);
  });

  it('unset removes a key; unset of a missing key returns the same instance', () => {
    const ts = base();
    expect(ts.unset('congo').serialize()).toBe('rojo=1,baz=3');
    expect(ts.unset('missing')).toBe(ts);
    expect(ts.unset('rojo').unset('congo').unset('baz').serialize()).toBe('');
  });

  it('constructor validates its entries', () => {
    expect(new TraceState([['a', '1'], ['b', '2']]).serialize()).toBe('a=1,b=2');
    expect(new TraceState().serialize()).toBe('');
    expect(() => new TraceState([['A', '1']])).toThrow(TypeError);
    expect(() => new TraceState([['a', '1,2']])).toThrow(TypeError);
    expect(() => new TraceState([['a', '1'], ['a', '2']])).toThrow(TypeError);
    expect(() => new TraceState(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'] as const))).toThrow(RangeError);
  });

  it('TraceState.parse is the same as parseTracestate', () => {
    expect(TraceState.parse('a=1, b=2')?.serialize()).toBe('a=1,b=2');
    expect(TraceState.parse('a=1,a=2')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------
// Propagator
// ---------------------------------------------------------------------------

type Carrier = Record<string, string | string[] | undefined>;

function recordingSetter(): { setter: TextMapSetter<Carrier>; calls: Array<[string, string]> } {
  const calls: Array<[string, string]> = [];
  return {
    calls,
    setter: {
      set(carrier, key, value) {
        calls.push([key, value]);
        carrier[key] = value;
      },
    },
  };
}

function contextWith(spanContext: SpanContext): Context {
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

describe('W3CTraceContextPropagator', () => {
  const propagator = new W3CTraceContextPropagator();

  it('fields() lists both headers', () => {
    expect(propagator.fields()).toEqual(['traceparent', 'tracestate']);
  });

  describe('extract', () => {
    it('sets a remote span context with flags and tracestate', () => {
      const ctx = propagator.extract(
        ROOT_CONTEXT,
        { traceparent: tp('03'), tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' },
        defaultTextMapGetter,
      );
      const sc = trace.getSpanContext(ctx);
      expect(sc).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0x03, isRemote: true });
      expect(sc?.traceState?.serialize()).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    });

    const invalidParents: Array<[name: string, traceparent: string | string[] | undefined]> = [
      ['missing', undefined],
      ['version ff', tp('01', 'ff')],
      ['all-zero trace-id', tp('01', '00', '0'.repeat(32))],
      ['two headers', [tp(), tp()]],
      ['Node-joined headers', `${tp()}, ${tp()}`],
      ['upper case', tp('01', '00', TRACE_ID.toUpperCase())],
    ];
    it.each(invalidParents)('invalid traceparent (%s): context is returned unchanged, tracestate ignored', (_n, traceparent) => {
      const carrier: Carrier = { traceparent, tracestate: 'foo=1' };
      const ctx = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
      expect(ctx).toBe(ROOT_CONTEXT);
      expect(trace.getSpanContext(ctx)).toBeUndefined();
    });

    it('an existing span context survives an invalid traceparent', () => {
      const existing = contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
      expect(propagator.extract(existing, { traceparent: 'garbage' }, defaultTextMapGetter)).toBe(existing);
    });

    const droppedStates: Array<[name: string, tracestate: string | string[] | undefined]> = [
      ['absent', undefined],
      ['empty', ''],
      ['invalid member', 'foo=1,BAR=2'],
      ['duplicate keys', 'foo=1,foo=2'],
      ['33 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ];
    it.each(droppedStates)('tracestate %s: traceparent is still used, no traceState is attached', (_n, tracestate) => {
      const ctx = propagator.extract(ROOT_CONTEXT, { traceparent: tp('01'), tracestate }, defaultTextMapGetter);
      const sc = trace.getSpanContext(ctx);
      expect(sc?.traceId).toBe(TRACE_ID);
      expect(sc?.traceState).toBeUndefined();
    });

    it('accepts a future version and keeps only the known flag bits', () => {
      const ctx = propagator.extract(ROOT_CONTEXT, { traceparent: `${tp('ff', 'cc')}-future` }, defaultTextMapGetter);
      expect(trace.getSpanContext(ctx)?.traceFlags).toBe(0x03);
    });
  });

  describe('inject', () => {
    it('writes exactly one version-00 traceparent and the tracestate', () => {
      const { setter, calls } = recordingSetter();
      const carrier: Carrier = {};
      const traceState = parseTracestate('a=1,b=2')!;
      propagator.inject(
        contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0x03, traceState }),
        carrier,
        setter,
      );
      expect(calls.filter(([k]) => k === 'traceparent')).toHaveLength(1);
      expect(calls).toEqual([
        ['traceparent', `00-${TRACE_ID}-${SPAN_ID}-03`],
        ['tracestate', 'a=1,b=2'],
      ]);
    });

    it('overwrites an existing traceparent in a plain-object carrier (still exactly one)', () => {
      const carrier: Carrier = { traceparent: tp('00', '00', '12345678901234567890123456789012') };
      propagator.inject(contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 }), carrier, defaultTextMapSetter);
      expect(carrier.traceparent).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`);
    });

    const flagCases: Array<[flags: number, hex: string]> = [
      [TraceFlags.NONE, '00'],
      [TraceFlags.SAMPLED, '01'],
      [TRACE_FLAG_RANDOM, '02'],
      [TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM, '03'],
      [0xff, '03'],
      [0x10, '00'],
    ];
    it.each(flagCases)('traceFlags %i is written as %s', (traceFlags, hex) => {
      const carrier: Carrier = {};
      propagator.inject(contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags }), carrier, defaultTextMapSetter);
      expect(carrier.traceparent).toBe(`00-${TRACE_ID}-${SPAN_ID}-${hex}`);
    });

    it('lower-cases ids that the api considers valid but are upper case', () => {
      const carrier: Carrier = {};
      propagator.inject(
        contextWith({ traceId: TRACE_ID.toUpperCase(), spanId: SPAN_ID.toUpperCase(), traceFlags: 1 }),
        carrier,
        defaultTextMapSetter,
      );
      expect(carrier.traceparent).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`);
    });

    it('writes nothing when tracing is suppressed', () => {
      const { setter, calls } = recordingSetter();
      propagator.inject(suppressTracing(contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 })), {}, setter);
      expect(calls).toEqual([]);
    });

    const invalidContexts: Array<[name: string, ctx: Context]> = [
      ['no span context', ROOT_CONTEXT],
      ['all-zero trace-id', contextWith({ traceId: '0'.repeat(32), spanId: SPAN_ID, traceFlags: 1 })],
      ['all-zero span-id', contextWith({ traceId: TRACE_ID, spanId: '0'.repeat(16), traceFlags: 1 })],
      ['short trace-id', contextWith({ traceId: 'abc', spanId: SPAN_ID, traceFlags: 1 })],
    ];
    it.each(invalidContexts)('writes nothing for %s', (_name, ctx) => {
      const { setter, calls } = recordingSetter();
      propagator.inject(ctx, {}, setter);
      expect(calls).toEqual([]);
    });

    it('omits tracestate when the traceState serializes to an empty string', () => {
      const { setter, calls } = recordingSetter();
      propagator.inject(
        contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, traceState: new TraceState() }),
        {},
        setter,
      );
      expect(calls.map(([k]) => k)).toEqual(['traceparent']);
    });

    it('serializes a foreign TraceState implementation (core) as is', () => {
      const carrier: Carrier = {};
      propagator.inject(
        contextWith({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, traceState: new CoreTraceState('x=1,y=2') }),
        carrier,
        defaultTextMapSetter,
      );
      expect(carrier.tracestate).toBe('x=1,y=2');
    });
  });

  describe('round trip extract -> inject', () => {
    const roundTrip = (incoming: Carrier, p = propagator): Carrier => {
      const ctx = p.extract(ROOT_CONTEXT, incoming, defaultTextMapGetter);
      const out: Carrier = {};
      p.inject(ctx, out, defaultTextMapSetter);
      return out;
    };

    const cases: Array<[name: string, incoming: Carrier, expected: Carrier]> = [
      ['random flag 0x02 survives', { traceparent: tp('02') }, { traceparent: tp('02') }],
      ['sampled + random 0x03 survives', { traceparent: tp('03') }, { traceparent: tp('03') }],
      ['reserved bits are cleared', { traceparent: tp('ff') }, { traceparent: tp('03') }],
      [
        'tracestate order is preserved',
        { traceparent: tp('03'), tracestate: 'congo=ucfJifl5GOE,rojo=00f067aa0ba902b7,a@b=c' },
        { traceparent: tp('03'), tracestate: 'congo=ucfJifl5GOE,rojo=00f067aa0ba902b7,a@b=c' },
      ],
      [
        'OWS and empty members are dropped, leading value spaces kept',
        { traceparent: tp('01'), tracestate: [' a= 1 ,, ', 'b=2\t'] },
        { traceparent: tp('01'), tracestate: 'a= 1,b=2' },
      ],
      [
        'future version is downgraded to 00',
        { traceparent: `${tp('03', 'cc')}-whatever`, tracestate: 'x=1' },
        { traceparent: tp('03'), tracestate: 'x=1' },
      ],
      [
        'OWS around traceparent is not echoed',
        { traceparent: `\t ${tp('01')} ` },
        { traceparent: tp('01') },
      ],
      [
        'invalid tracestate is dropped, traceparent kept',
        { traceparent: tp('01'), tracestate: 'a=1,a=2' },
        { traceparent: tp('01') },
      ],
      ['invalid traceparent: nothing is injected', { traceparent: tp('01', 'ff'), tracestate: 'a=1' }, {}],
    ];
    it.each(cases)('%s', (_name, incoming, expected) => {
      expect(roundTrip(incoming)).toEqual(expected);
    });

    it('a 32-member tracestate across several headers comes out as one header in the same order', () => {
      const m = Array.from({ length: 32 }, (_, i) => `k${i}=${i}`);
      const out = roundTrip({ traceparent: tp('02'), tracestate: [m.slice(0, 16).join(','), m.slice(16).join(',')] });
      expect(out.tracestate).toBe(m.join(','));
      expect(out.traceparent).toBe(tp('02'));
    });

    it('set() after extract moves the key to the front and inject writes that', () => {
      const ctx = propagator.extract(
        ROOT_CONTEXT,
        { traceparent: tp('03'), tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' },
        defaultTextMapGetter,
      );
      const sc = trace.getSpanContext(ctx)!;
      const child: SpanContext = {
        ...sc,
        spanId: 'b9c7c989f97918e1',
        isRemote: false,
        traceState: sc.traceState!.set('congo', 'ucfJifl5GOE'),
      };
      const out: Carrier = {};
      propagator.inject(trace.setSpanContext(ROOT_CONTEXT, child), out, defaultTextMapSetter);
      expect(out).toEqual({
        traceparent: `00-${TRACE_ID}-b9c7c989f97918e1-03`,
        tracestate: 'congo=ucfJifl5GOE,rojo=00f067aa0ba902b7',
      });
    });
  });
});
