import { isValidSpanId, isValidTraceId } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { PooledRandomIdGenerator } from '../../src/tracing/random-ids.js';

/** Fills with a running counter of non-zero bytes (zeros first when asked), recording the hex of every fill. */
function countingFill(fills: string[], zeroFirst = 0): (bytes: Buffer) => void {
  let n = 1;
  return (bytes) => {
    for (let i = 0; i < bytes.length; i++) bytes[i] = fills.length === 0 && i < zeroFirst ? 0 : (n++ % 255) + 1;
    fills.push(bytes.toString('hex'));
  };
}

describe('PooledRandomIdGenerator', () => {
  it('gives valid, distinct lowercase hex ids across many pool refills', () => {
    const ids = new PooledRandomIdGenerator();
    const seen = new Set<string>();
    // 4 KiB pools: 20,000 trace ids and 20,000 span ids take about 15 refills.
    for (let i = 0; i < 20_000; i++) {
      const traceId = ids.generateTraceId();
      const spanId = ids.generateSpanId();
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(isValidTraceId(traceId) && isValidSpanId(spanId)).toBe(true);
      seen.add(traceId);
      seen.add(spanId);
    }
    expect(seen.size).toBe(40_000);
  });

  it('hands out consecutive slices of each draw, and draws again when the next id does not fit', () => {
    const fills: string[] = [];
    // 40 bytes = 80 hex characters: trace (32) + span (16) + trace (32) fill it exactly.
    const ids = new PooledRandomIdGenerator(countingFill(fills), 40);
    const got = [ids.generateTraceId(), ids.generateSpanId(), ids.generateTraceId(), ids.generateSpanId(), ids.generateSpanId(), ids.generateTraceId(), ids.generateTraceId()];
    expect(fills).toHaveLength(3);
    const [a, b, c] = fills as [string, string, string];
    expect(got).toEqual([
      a.slice(0, 32),
      a.slice(32, 48),
      a.slice(48, 80),
      // Second draw: span, span, trace (64 of 80 characters); the next trace id no longer fits.
      b.slice(0, 16),
      b.slice(16, 32),
      b.slice(32, 64),
      c.slice(0, 32),
    ]);
  });

  it('never hands out an all-zero id: that slice is skipped', () => {
    const fills: string[] = [];
    const ids = new PooledRandomIdGenerator(countingFill(fills, 8), 64);
    const first = ids.generateSpanId();
    expect(fills[0]!.slice(0, 16)).toBe('0'.repeat(16));
    expect(first).toBe(fills[0]!.slice(16, 32));
    const fillsZeroTrace: string[] = [];
    const traceIds = new PooledRandomIdGenerator(countingFill(fillsZeroTrace, 16), 64);
    expect(traceIds.generateTraceId()).toBe(fillsZeroTrace[0]!.slice(32, 64));
  });

  it('gives uniformly random bits by default: every bit of a trace id is set about half the time', () => {
    const ids = new PooledRandomIdGenerator();
    const ones = new Array<number>(128).fill(0);
    const n = 4000;
    for (let i = 0; i < n; i++) {
      const bytes = Buffer.from(ids.generateTraceId(), 'hex');
      for (let bit = 0; bit < 128; bit++) ones[bit]! += (bytes[bit >> 3]! >> (bit & 7)) & 1;
    }
    // Binomial(4000, 0.5): 6 standard deviations is ±190.
    for (const count of ones) expect(Math.abs(count - n / 2)).toBeLessThan(190);
  });
});
