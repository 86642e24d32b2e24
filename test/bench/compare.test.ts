import { cpSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runNode, type NodeRun } from '../helpers/run-node.js';

/**
 * Keeps `bench/compare.ts` (builds side by side) from rotting: two copies of the current build run
 * one short round each. Nothing here asserts on speed.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const copy = join(ROOT, 'dist-compare-smoke');

afterAll(() => rmSync(copy, { recursive: true, force: true }));

function run(args: string[], timeoutMs: number): Promise<NodeRun> {
  return runNode(['bench/compare.ts', ...args], ROOT, timeoutMs);
}

describe('bench/compare.ts', () => {
  it('runs two builds side by side and prints one row per build with the paired ratio', { timeout: 60_000 }, async () => {
    cpSync(join(ROOT, 'dist'), copy, { recursive: true });
    const { code, stdout, stderr } = await run(['--rounds', '1', '--duration', '1', 'dist', 'dist-compare-smoke'], 55_000);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);
    expect(stdout, context).toMatch(/^\| dist \| \d+ \| 1\.00 \(1\.00–1\.00\) \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|$/m);
    const row = stdout.match(/^\| dist-compare-smoke \| \d+ \| [\d.]+ \([\d.]+–[\d.]+\) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \| \d+ \|$/m);
    expect(row, context).not.toBeNull();
    // The CPU split by thread adds up to the process's CPU (both read in clock ticks, so only roughly).
    const [total, mainUser, mainSystem, others] = row!.slice(1).map(Number) as [number, number, number, number];
    expect(mainUser, context).toBeGreaterThan(0);
    expect(Math.abs(mainUser + mainSystem + others - total), context).toBeLessThanOrEqual(15 + total * 0.25);
  });

  it('takes per-build environment settings and Node flags, each build labelled by its spec', { timeout: 60_000 }, async () => {
    const off = 'dist:OTEL_TRACES_SAMPLER=always_off:--max-semi-space-size=8';
    const { code, stdout, stderr } = await run(['--rounds', '1', '--duration', '1', 'dist', off], 55_000);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);
    expect(stdout, context).toContain(`| ${off} | `);
  });

  it('refuses a malformed build spec, with one line naming it', async () => {
    const { code, stderr } = await run(['dist', 'dist:NOEQUALS'], 10_000);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('compare: dist:NOEQUALS: expected DIR[:NAME=VALUE...][:--flag...], got "NOEQUALS"');
  });

  it('refuses a directory that is not a compiled gateway, with one line naming it', async () => {
    const { code, stderr } = await run(['dist', 'src'], 10_000);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('compare: src/src/main.js not found: not a compiled gateway');
  });
});
