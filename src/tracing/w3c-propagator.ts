/**
 * Strict W3C Trace Context Level 2 propagator (`traceparent` / `tracestate`).
 *
 * Spec: https://www.w3.org/TR/trace-context-2/ (Candidate Recommendation Draft,
 * 28 March 2024). Section names below refer to that document.
 *
 * Why not `@opentelemetry/core`'s W3CTraceContextPropagator:
 *  - it validates tracestate keys with the Level 1 simple-key / multi-tenant-key
 *    grammar; Level 2 replaced it with a single rule that allows '@' anywhere;
 *  - it drops bad tracestate members one at a time and keeps the rest (this
 *    module discards the whole header instead);
 *  - it writes the flags as `0${flags.toString(16)}`, which breaks for values
 *    >= 0x10 (three characters), and it does not clear unknown bits.
 *
 * Decisions where the spec leaves room:
 *  - OWS around traceparent: SP/HTAB are stripped (RFC 9110 section 5.5; the
 *    W3C test suite's test_traceparent_ows_handling expects them accepted).
 *    Other whitespace (CR, LF, VT, NBSP...) is not stripped, so it is invalid.
 *  - More than one traceparent (array with more than one element, or a value
 *    joined with ',' by Node/undici): invalid. A ',' can never appear in a
 *    well-formed single value, so its presence means headers were joined.
 *  - Higher versions: parsed by their first four fields (section "Versioning of
 *    traceparent"); the output is always downgraded to version 00.
 *  - Flags: only the bits Level 2 defines (sampled 0x01, random 0x02) are kept,
 *    for every version. "Other Flags ... Vendors MUST set those to zero."
 *  - tracestate over 512 chars: not an error. "Vendors SHOULD propagate at
 *    least 512 characters"; if it must be truncated "the vendor MUST truncate
 *    whole entries" (entries over 128 chars first, then from the right). The
 *    limit is configurable (`maxTracestateLength`, default 512).
 *  - Duplicate tracestate keys, a 33rd member, or any member that breaks the
 *    grammar: the whole tracestate is discarded (the traceparent is kept).
 */
import {
  isSpanContextValid,
  trace,
  type Context,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type TraceState as ApiTraceState,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';

export const TRACEPARENT_HEADER = 'traceparent';
export const TRACESTATE_HEADER = 'tracestate';

/** Sampled flag (Level 1 and 2). */
export const TRACE_FLAG_SAMPLED = 0x01;
/** Random trace-id flag (Level 2 section "Random Trace ID Flag"). */
export const TRACE_FLAG_RANDOM = 0x02;
/** Every bit this implementation knows; all others are cleared on the way in and out. */
const KNOWN_TRACE_FLAGS = TRACE_FLAG_SAMPLED | TRACE_FLAG_RANDOM;
/** `flags & KNOWN_TRACE_FLAGS` is 0..3: a table avoids `toString(16)` + padding on every inject. */
const FLAGS_HEX = ['00', '01', '02', '03'] as const;

/** "00-" + 32 + "-" + 16 + "-" + 2 */
const TRACEPARENT_LENGTH = 55;
const TRACE_ID_OFFSET = 3;
const SPAN_ID_OFFSET = 36;
const FLAGS_OFFSET = 53;

const MAX_LIST_MEMBERS = 32;
const MAX_KEY_LENGTH = 256;
const MAX_VALUE_LENGTH = 256;
/** "Vendors SHOULD propagate at least 512 characters of a combined header." */
export const DEFAULT_MAX_TRACESTATE_LENGTH = 512;
/** "Entries larger than 128 characters long SHOULD be removed first." */
const TRUNCATE_FIRST_ENTRY_LENGTH = 128;

const CH_TAB = 0x09;
const CH_SPACE = 0x20;
const CH_COMMA = 0x2c;
const CH_DASH = 0x2d;
const CH_EQUALS = 0x3d;

export interface ParsedTraceparent {
  /** 32 lowercase hex characters, not all zero. */
  traceId: string;
  /** 16 lowercase hex characters, not all zero. */
  spanId: string;
  /** Received flags with everything but sampled (0x01) and random (0x02) cleared. */
  traceFlags: number;
}

// ---------------------------------------------------------------------------
// Character classes. charCode tests instead of regexes: no backtracking and no
// allocation, and the loops are bounded by the (already capped) field lengths.
// ---------------------------------------------------------------------------

/** OWS = *( SP / HTAB ) (RFC 9110 section 5.6.3). */
function isOws(c: number): boolean {
  return c === CH_SPACE || c === CH_TAB;
}

/** HEXDIGLC -> 0..15, anything else (upper-case hex included) -> -1. */
function lcHexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** `s[start, end)` is lowercase hex and not all zero. */
function isLcHexId(s: string, start: number, end: number): boolean {
  let nonZero = false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (lcHexValue(c) < 0) return false;
    if (c !== 0x30) nonZero = true;
  }
  return nonZero;
}

/** lcalpha / DIGIT: the first character of a key. */
function isKeyStartChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
}

/** keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" */
function isKeyChar(c: number): boolean {
  return (
    isKeyStartChar(c) || c === 0x5f || c === 0x2d || c === 0x2a || c === 0x2f || c === 0x40
  );
}

/** chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E (printable ASCII minus ',' and '='). */
function isValueChar(c: number): boolean {
  return c >= 0x20 && c <= 0x7e && c !== CH_COMMA && c !== CH_EQUALS;
}

/**
 * Level 2 section "Key":
 *   key     = ( lcalpha / DIGIT ) 0*255 ( keychar )
 *   keychar = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
 * Level 1's simple-key / multi-tenant-key split (tenant <= 241, system <= 14)
 * is gone; every Level 1 key is still valid under this rule.
 */
export function isValidTracestateKey(key: string): boolean {
  const n = key.length;
  if (n === 0 || n > MAX_KEY_LENGTH || !isKeyStartChar(key.charCodeAt(0))) return false;
  for (let i = 1; i < n; i++) {
    if (!isKeyChar(key.charCodeAt(i))) return false;
  }
  return true;
}

/** value = 0*255(chr) nblk-chr: 1..256 characters and the last one is not a space. */
export function isValidTracestateValue(value: string): boolean {
  return isValidValueRange(value, 0, value.length);
}

function isValidValueRange(s: string, start: number, end: number): boolean {
  const n = end - start;
  if (n < 1 || n > MAX_VALUE_LENGTH || s.charCodeAt(end - 1) === CH_SPACE) return false;
  for (let i = start; i < end; i++) {
    if (!isValueChar(s.charCodeAt(i))) return false;
  }
  return true;
}

/**
 * Scans a key that starts at `start` and ends at the first '='.
 * Returns the index of that '=', or -1 if the key is invalid or there is no '='.
 */
function scanKey(s: string, start: number, end: number): number {
  if (start >= end || !isKeyStartChar(s.charCodeAt(start))) return -1;
  const limit = Math.min(end, start + MAX_KEY_LENGTH + 1); // the '=' may sit just after 256 key chars
  for (let i = start + 1; i < limit; i++) {
    const c = s.charCodeAt(i);
    if (c === CH_EQUALS) return i;
    if (!isKeyChar(c)) return -1;
  }
  return -1; // key too long, or no '='
}

// ---------------------------------------------------------------------------
// traceparent
// ---------------------------------------------------------------------------

/**
 * Parses a `traceparent` header value. Returns undefined when it is absent or
 * invalid; the caller should then ignore tracestate too.
 */
export function parseTraceparent(
  value: string | string[] | undefined,
): ParsedTraceparent | undefined {
  let header: string;
  if (typeof value === 'string') {
    header = value;
  } else if (Array.isArray(value)) {
    // More than one traceparent field: the W3C test suite
    // (test_traceparent_duplicated) expects the trace to restart.
    if (value.length !== 1) return undefined;
    const only: unknown = value[0];
    if (typeof only !== 'string') return undefined;
    header = only;
  } else {
    return undefined;
  }

  // RFC 9110 section 5.5: "Leading and trailing whitespace in raw field values
  // is removed upon field parsing". Only SP/HTAB count as OWS. Index bounds are
  // used instead of slicing, so the common case allocates nothing until the ids
  // are extracted.
  let start = 0;
  let end = header.length;
  while (start < end && isOws(header.charCodeAt(start))) start++;
  while (end > start && isOws(header.charCodeAt(end - 1))) end--;
  const length = end - start;
  // "If the size of the header is shorter than 55 characters, the vendor should
  // not parse the header and should restart the trace."
  if (length < TRACEPARENT_LENGTH) return undefined;
  // Node and undici join repeated headers with ", ". No well-formed single
  // traceparent contains ',', so any ',' means there was more than one.
  if (header.indexOf(',', start) !== -1) return undefined;

  // version = 2HEXDIGLC, "Version ff is invalid".
  const v0 = lcHexValue(header.charCodeAt(start));
  const v1 = lcHexValue(header.charCodeAt(start + 1));
  if (v0 < 0 || v1 < 0) return undefined;
  const version = (v0 << 4) | v1;
  if (version === 0xff) return undefined;
  if (header.charCodeAt(start + 2) !== CH_DASH) return undefined;

  // trace-id = 32HEXDIGLC, all zeroes forbidden.
  const traceIdStart = start + TRACE_ID_OFFSET;
  if (!isLcHexId(header, traceIdStart, traceIdStart + 32)) return undefined;
  if (header.charCodeAt(traceIdStart + 32) !== CH_DASH) return undefined;

  // parent-id = 16HEXDIGLC, all zeroes forbidden.
  const spanIdStart = start + SPAN_ID_OFFSET;
  if (!isLcHexId(header, spanIdStart, spanIdStart + 16)) return undefined;
  if (header.charCodeAt(spanIdStart + 16) !== CH_DASH) return undefined;

  // trace-flags = 2HEXDIGLC
  const f0 = lcHexValue(header.charCodeAt(start + FLAGS_OFFSET));
  const f1 = lcHexValue(header.charCodeAt(start + FLAGS_OFFSET + 1));
  if (f0 < 0 || f1 < 0) return undefined;

  if (version === 0) {
    // Version 00 is exactly 55 characters; anything after the flags is invalid.
    if (length !== TRACEPARENT_LENGTH) return undefined;
  } else if (length > TRACEPARENT_LENGTH && header.charCodeAt(start + TRACEPARENT_LENGTH) !== CH_DASH) {
    // Higher version: "Vendors MUST check that the 2 characters are either at
    // the end of the string or followed by a dash". Fields after that are
    // unknown and not looked at.
    return undefined;
  }

  return {
    traceId: header.slice(traceIdStart, traceIdStart + 32),
    spanId: header.slice(spanIdStart, spanIdStart + 16),
    // Unknown bits are cleared here rather than only on inject, so a zero-pad
    // formatter downstream (the stock one does `0${n.toString(16)}`) can never
    // see a value >= 0x10.
    traceFlags: ((f0 << 4) | f1) & KNOWN_TRACE_FLAGS,
  };
}

/**
 * Formats a version-00 traceparent. `traceId`/`spanId` must already be valid
 * lowercase hex (the propagator checks this). Flags are masked to the known
 * bits: "Other Flags ... Vendors MUST set those to zero."
 */
export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${FLAGS_HEX[flags & KNOWN_TRACE_FLAGS]}`;
}

/** The api's isValidTraceId/isValidSpanId accept upper-case hex; the wire format is HEXDIGLC. */
function toLowerHex(id: string): string {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0x41 && c <= 0x46) return id.toLowerCase();
  }
  return id;
}

// ---------------------------------------------------------------------------
// tracestate
// ---------------------------------------------------------------------------

/** Length of the serialized list "k1=v1,k2=v2,...". */
function serializedLength(keys: readonly string[], values: readonly string[]): number {
  const n = keys.length;
  if (n === 0) return 0;
  let total = n - 1; // commas
  for (let i = 0; i < n; i++) total += (keys[i] ?? '').length + 1 + (values[i] ?? '').length;
  return total;
}

/**
 * Level 2 section "tracestate Limits": "the vendor MUST truncate whole entries.
 * Entries larger than 128 characters long SHOULD be removed first. Then entries
 * SHOULD be removed starting from the end of tracestate."
 * Entries are removed only until the list fits. Large entries go right to left.
 * The first `keep` entries are never removed (`set` uses this to protect the
 * entry it just added). Mutates the arrays; rare path, so splice is fine.
 */
function truncate(keys: string[], values: string[], maxLength: number, keep: number): void {
  let total = serializedLength(keys, values);
  if (total <= maxLength) return;
  const removeAt = (i: number): void => {
    const entry = (keys[i] ?? '').length + 1 + (values[i] ?? '').length;
    total -= keys.length > 1 ? entry + 1 : entry;
    keys.splice(i, 1);
    values.splice(i, 1);
  };
  for (let i = keys.length - 1; i >= keep && total > maxLength; i--) {
    const entry = (keys[i] ?? '').length + 1 + (values[i] ?? '').length;
    if (entry > TRUNCATE_FIRST_ENTRY_LENGTH) removeAt(i);
  }
  while (total > maxLength && keys.length > keep) removeAt(keys.length - 1);
}

/**
 * An immutable, ordered tracestate list that is always valid under Level 2:
 * grammatical keys and values, unique keys, at most 32 members, and a serialized
 * length within `maxLength` (default 512).
 *
 * `serialize()` returns the members in received order without OWS or empty
 * members ("Optional whitespace MAY be excluded when propagating the header").
 * `set` moves or adds the key to the front ("Modified keys MUST be moved to the
 * beginning (left) of the list"). When that goes past 32 members the right-most
 * is dropped ("If adding an entry would cause the tracestate list to contain
 * more than 32 list-members the right-most list-member should be removed").
 */
export class TraceState implements ApiTraceState {
  private readonly _keys: readonly string[];
  private readonly _values: readonly string[];
  private readonly _maxLength: number;
  private _serialized: string | undefined;

  /**
   * Builds a tracestate from entries in list order (left first). Throws on
   * invalid keys or values, duplicate keys, or more than 32 entries: a caller
   * building an invalid list has a bug. Entries past `maxLength` are truncated
   * the way the spec says. Use {@link parseTracestate} for untrusted input.
   */
  constructor(
    entries: Iterable<readonly [key: string, value: string]> = [],
    maxLength: number = DEFAULT_MAX_TRACESTATE_LENGTH,
  ) {
    const keys: string[] = [];
    const values: string[] = [];
    for (const [key, value] of entries) {
      if (!isValidTracestateKey(key)) throw new TypeError(`invalid tracestate key: ${JSON.stringify(key)}`);
      if (!isValidTracestateValue(value)) {
        throw new TypeError(`invalid tracestate value for key ${key}: ${JSON.stringify(value)}`);
      }
      if (keys.includes(key)) throw new TypeError(`duplicate tracestate key: ${key}`);
      keys.push(key);
      values.push(value);
    }
    if (keys.length > MAX_LIST_MEMBERS) {
      throw new RangeError(`tracestate has ${keys.length} entries; at most ${MAX_LIST_MEMBERS} are allowed`);
    }
    truncate(keys, values, maxLength, 0);
    this._keys = keys;
    this._values = values;
    this._maxLength = maxLength;
    this._serialized = undefined;
  }

  /** Skips validation; for arrays this module has already checked. */
  private static _trusted(keys: string[], values: string[], maxLength: number): TraceState {
    const state = Object.create(TraceState.prototype) as {
      _keys: readonly string[];
      _values: readonly string[];
      _maxLength: number;
      _serialized: string | undefined;
    };
    state._keys = keys;
    state._values = values;
    state._maxLength = maxLength;
    state._serialized = undefined;
    return state as unknown as TraceState;
  }

  /** Same as {@link parseTracestate}. */
  static parse(
    value: string | string[] | undefined,
    maxLength: number = DEFAULT_MAX_TRACESTATE_LENGTH,
  ): TraceState | undefined {
    const members = parseMembers(value);
    if (members === undefined) return undefined;
    truncate(members.keys, members.values, maxLength, 0);
    return TraceState._trusted(members.keys, members.values, maxLength);
  }

  /** Number of list members. */
  get size(): number {
    return this._keys.length;
  }

  /** Keys in list order (left first). */
  keys(): string[] {
    return this._keys.slice();
  }

  get(key: string): string | undefined {
    // At most 32 entries: a linear scan beats building a Map per request.
    const keys = this._keys;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === key) return this._values[i];
    }
    return undefined;
  }

  /**
   * Returns a new TraceState with `key` at the front. Invalid keys or values,
   * or an entry that alone would exceed `maxLength`, leave the state unchanged
   * (the api's TraceState.set has no error channel; core does the same).
   */
  set(key: string, value: string): TraceState {
    if (!isValidTracestateKey(key) || !isValidTracestateValue(value)) return this;
    if (key.length + 1 + value.length > this._maxLength) return this;
    const keys = [key];
    const values = [value];
    for (let i = 0; i < this._keys.length; i++) {
      const k = this._keys[i];
      // "Adding a key/value pair MUST NOT result in the same key being present multiple times."
      if (k === undefined || k === key) continue;
      keys.push(k);
      values.push(this._values[i] ?? '');
    }
    if (keys.length > MAX_LIST_MEMBERS) {
      keys.length = MAX_LIST_MEMBERS;
      values.length = MAX_LIST_MEMBERS;
    }
    truncate(keys, values, this._maxLength, 1);
    return TraceState._trusted(keys, values, this._maxLength);
  }

  unset(key: string): TraceState {
    const index = this._keys.indexOf(key);
    if (index === -1) return this;
    const keys = this._keys.slice();
    const values = this._values.slice();
    keys.splice(index, 1);
    values.splice(index, 1);
    return TraceState._trusted(keys, values, this._maxLength);
  }

  serialize(): string {
    if (this._serialized === undefined) {
      let out = '';
      for (let i = 0; i < this._keys.length; i++) {
        if (i > 0) out += ',';
        out += `${this._keys[i] ?? ''}=${this._values[i] ?? ''}`;
      }
      this._serialized = out;
    }
    return this._serialized;
  }
}

/**
 * Parses one or more `tracestate` header values.
 *
 * - Several fields (string[]) are joined with ',' as RFC 9110 section 5.3 says
 *   ("When receiving multiple tracestate header fields, they MUST be combined").
 * - Empty and OWS-only list members are allowed and ignored, so an empty header
 *   gives an empty (valid) TraceState ("Vendors MUST accept empty tracestate
 *   headers").
 * - OWS (SP/HTAB) around members is dropped; leading spaces inside a value are
 *   kept, trailing ones are OWS ("all leading spaces MUST be preserved as part
 *   of the value and all trailing spaces are considered to be optional
 *   whitespace characters not part of the value").
 * - Only key=value members count toward the limit of 32. Empty members are
 *   there because joined headers produce them, so they are not counted.
 * - Any invalid member, duplicate key, or 33rd member: returns undefined, and
 *   the whole header is discarded. The processing model allows this ("If the
 *   tracestate header cannot be parsed the vendor MAY discard the entire
 *   header"). Level 2 only says receivers MAY drop duplicate keys; dropping the
 *   whole header for them is this module's stricter choice.
 * - Serialized length over `maxLength`: whole entries are truncated (see
 *   `truncate`). The header is never discarded for its length.
 *
 * Returns undefined for absent or invalid input.
 */
export function parseTracestate(
  value: string | string[] | undefined,
  maxLength: number = DEFAULT_MAX_TRACESTATE_LENGTH,
): TraceState | undefined {
  return TraceState.parse(value, maxLength);
}

/** Splits and validates list members; undefined means discard the whole header. */
function parseMembers(value: unknown): { keys: string[]; values: string[] } | undefined {
  let header: string;
  if (typeof value === 'string') {
    header = value;
  } else if (Array.isArray(value)) {
    for (const part of value as unknown[]) {
      if (typeof part !== 'string') return undefined;
    }
    header = value.length === 1 ? (value[0] as string) : value.join(',');
  } else {
    return undefined;
  }

  const keys: string[] = [];
  const values: string[] = [];
  const n = header.length;
  let pos = 0;
  while (pos <= n) {
    let next = header.indexOf(',', pos);
    if (next === -1) next = n;
    let start = pos;
    let end = next;
    while (start < end && isOws(header.charCodeAt(start))) start++;
    while (end > start && isOws(header.charCodeAt(end - 1))) end--;
    if (start < end) {
      if (keys.length === MAX_LIST_MEMBERS) return undefined; // this would be member 33
      const eq = scanKey(header, start, end);
      if (eq === -1 || !isValidValueRange(header, eq + 1, end)) return undefined;
      const key = header.slice(start, eq);
      // Duplicate check with a linear scan: n <= 32, so at most 496 string
      // compares, and no Set is allocated on the common path.
      for (let i = 0; i < keys.length; i++) {
        if (keys[i] === key) return undefined;
      }
      keys.push(key);
      values.push(header.slice(eq + 1, end));
    }
    pos = next + 1;
  }
  return { keys, values };
}

// ---------------------------------------------------------------------------
// Propagator
// ---------------------------------------------------------------------------

export interface W3CTraceContextPropagatorOptions {
  /**
   * Largest tracestate (serialized, without OWS) that extract keeps. Past it,
   * whole entries are truncated as the spec says. Default 512, the smallest
   * size the spec asks vendors to propagate. Use Infinity to keep every valid
   * list: the grammar caps it near 16.4 KB (32 x 513 + 31).
   */
  maxTracestateLength?: number;
}

export class W3CTraceContextPropagator implements TextMapPropagator {
  private readonly _maxTracestateLength: number;

  constructor(options: W3CTraceContextPropagatorOptions = {}) {
    this._maxTracestateLength = options.maxTracestateLength ?? DEFAULT_MAX_TRACESTATE_LENGTH;
  }

  inject(context: Context, carrier: unknown, setter: TextMapSetter): void {
    const spanContext = trace.getSpanContext(context);
    if (spanContext === undefined || isTracingSuppressed(context) || !isSpanContextValid(spanContext)) {
      return;
    }
    // Always version 00, the highest version this code knows ("Vendors MUST use
    // these fields to construct the new traceparent field according to the
    // highest version of the specification known to the implementation").
    setter.set(
      carrier,
      TRACEPARENT_HEADER,
      formatTraceparent(toLowerHex(spanContext.traceId), toLowerHex(spanContext.spanId), spanContext.traceFlags),
    );
    const traceState = spanContext.traceState;
    if (traceState !== undefined) {
      const serialized = traceState.serialize();
      // "Vendors MUST accept empty tracestate headers but SHOULD avoid sending them."
      if (serialized !== '') setter.set(carrier, TRACESTATE_HEADER, serialized);
    }
  }

  extract(context: Context, carrier: unknown, getter: TextMapGetter): Context {
    // Header names are case-insensitive. Node and undici give lowercase names,
    // and the getter does the lookup, so only the lowercase name is asked for.
    const parent = parseTraceparent(getter.get(carrier, TRACEPARENT_HEADER));
    // "If the vendor failed to parse traceparent, it MUST NOT attempt to parse tracestate."
    if (parent === undefined) return context;
    const spanContext: SpanContext = {
      traceId: parent.traceId,
      spanId: parent.spanId,
      traceFlags: parent.traceFlags,
      isRemote: true,
    };
    // "failure to parse tracestate MUST NOT affect the parsing of traceparent"
    const traceState = parseTracestate(getter.get(carrier, TRACESTATE_HEADER), this._maxTracestateLength);
    if (traceState !== undefined && traceState.size > 0) spanContext.traceState = traceState;
    return trace.setSpanContext(context, spanContext);
  }

  fields(): string[] {
    return [TRACEPARENT_HEADER, TRACESTATE_HEADER];
  }
}
