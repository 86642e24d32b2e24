import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runNode } from '../helpers/run-node.js';

/** Keeps `bench/spans.ts` (the tracing microbenchmark) from rotting. Nothing here asserts on speed. */
const ROOT = resolve(import.meta.dirname, '../..');

describe('bench/spans.ts', () => {
  it('runs every variant in its own process and prints one row each', { timeout: 60_000 }, async () => {
    const { code, stdout, stderr } = await runNode(['bench/spans.ts', '--rounds', '1', '--requests', '2000'], ROOT, 55_000);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);
    for (const variant of ['off', 'sdk', 'gateway', 'sdk+otlp', 'gateway+otlp', 'otlp-only']) {
      expect(stdout, context).toMatch(new RegExp(`^\\| ${variant.replace('+', '\\+')} \\| \\d+\\.\\d\\d \\| \\d+\\.\\d\\d–\\d+\\.\\d\\d \\|$`, 'm'));
    }
  });

  it('compares builds: every variant of each build, labelled with the build', { timeout: 60_000 }, async () => {
    const { code, stdout, stderr } = await runNode(['bench/spans.ts', '--rounds', '1', '--requests', '1000', '--builds', 'dist,dist'], ROOT, 55_000);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);
    const rows = stdout.split('\n').filter((line) => /^\| dist (off|sdk|gateway|sdk\+otlp|gateway\+otlp|otlp-only) \| \d+\.\d\d \|/.test(line));
    expect(rows, context).toHaveLength(12);
  });

  it('refuses a build that is not a compiled gateway', { timeout: 30_000 }, async () => {
    const { code, stderr } = await runNode(['bench/spans.ts', '--rounds', '1', '--requests', '1000', '--builds', 'dist,no-such-build'], ROOT, 25_000);
    expect(code).not.toBe(0);
    expect(stderr).toContain('--builds: no-such-build is not a compiled gateway');
  });
});
