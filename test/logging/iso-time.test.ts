import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IsoTime } from '../../src/logging/iso-time.js';

// The whole range Date can represent (±8.64e15 ms), so six-digit and negative years are covered too.
const anyTime = fc.integer({ min: -8.64e15, max: 8.64e15 });

describe('IsoTime', () => {
  it('writes what Date#toISOString writes, for any time', () => {
    fc.assert(
      fc.property(anyTime, (ms) => {
        expect(new IsoTime().at(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 5000 },
    );
  });

  it('stays exact across a sequence of times (its per-minute and per-millisecond caches)', () => {
    // Runs of nearby times (same millisecond, same minute, the next minute, day and year
    // boundaries) interleaved with jumps anywhere, through one instance.
    const step = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 999 }), fc.integer({ min: 1, max: 120_000 }), fc.integer({ min: -120_000, max: -1 }));
    fc.assert(
      fc.property(anyTime, fc.array(fc.oneof(step.map((d) => ({ d })), anyTime.map((at) => ({ at }))), { maxLength: 200 }), (start, moves) => {
        const clock = new IsoTime();
        let ms = start;
        for (const move of moves) {
          ms = 'at' in move ? move.at : Math.max(-8.64e15, Math.min(8.64e15, ms + move.d));
          expect(clock.at(ms)).toBe(new Date(ms).toISOString());
        }
      }),
      { numRuns: 300 },
    );
  });

  it('handles the boundaries of minutes, days, years and the epoch', () => {
    const clock = new IsoTime();
    const times = [
      0, -1, 1, 59_999, 60_000, -60_000, -60_001, Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2000, 0, 1), Date.UTC(2024, 1, 29, 12, 0, 5, 7),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999), Date.UTC(10000, 0, 1), Date.UTC(-1, 0, 1), 8.64e15, -8.64e15,
    ];
    for (const ms of times) expect(clock.at(ms)).toBe(new Date(ms).toISOString());
  });
});
