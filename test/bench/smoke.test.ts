import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runNode, type NodeRun } from '../helpers/run-node.js';

/**
 * Keeps the benchmark from rotting: `node bench/run.ts --smoke` starts the real upstream, sink and
 * all five targets (the gateway from dist/, built by `npm test`), loads each for 2 s, and must
 * finish cleanly. Nothing here asserts on speed: these machines are too noisy for that.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'gw-bench-smoke-'));
const out = join(dir, 'smoke.json');

afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Row {
  target: number;
  connections: number;
  requests: number;
  reqPerSec: number;
  errors: number;
  cpuUsPerReq: number;
  rssMaxMB: number;
  spansPerReq: number | null;
  otlpTraceBytesPerReq: number | null;
}

function runSmoke(timeoutMs: number): Promise<NodeRun> {
  // SIGTERM on timeout lets the bench kill everything it started before it exits.
  return runNode(['bench/run.ts', '--smoke', '--out', out], ROOT, timeoutMs);
}

describe('bench --smoke', () => {
  it('starts every target, loads it without errors, prints the table and writes the JSON', { timeout: 90_000 }, async () => {
    const { code, stdout, stderr } = await runSmoke(85_000);
    const context = `exit ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    expect(code, context).toBe(0);

    expect(stdout, context).toMatch(/^upstream: (nginx|node:http) /m);
    for (const id of [1, 2, 3, 4, 5, 6]) expect(stdout, context).toMatch(new RegExp(`^  target ${id} \\(.+\\): pid \\d+, port \\d+, ready`, 'm'));
    // Nothing the bench started outlives it.
    const pids = [...stdout.matchAll(/: pid (\d+), port/g)].map((m) => Number(m[1]));
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive, 'processes still running after the bench exited').toEqual([]);
    expect(stdout).toMatch(/^\| target +\| c +\| +req\/s \|/m);
    expect(stdout).toContain('## medians over 1 round(s)');
    expect(stdout).toMatch(/req\/s ratios at c8: 5\/2 = [\d.]+, 5\/3 = [\d.]+, 5\/4 = [\d.]+, 5\/1 = [\d.]+/);

    expect(existsSync(out)).toBe(true);
    const result = JSON.parse(readFileSync(out, 'utf8')) as { rows: Row[]; medians: Row[] };
    expect(result.rows.map((r) => r.target).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    for (const row of result.rows) {
      expect(row.connections).toBe(8);
      expect(row.requests, `target ${row.target}`).toBeGreaterThan(0);
      expect(row.errors, `target ${row.target}`).toBe(0);
      expect(row.cpuUsPerReq, `target ${row.target}`).toBeGreaterThan(0);
      expect(row.rssMaxMB, `target ${row.target}`).toBeGreaterThan(0);
    }
    const byTarget = (t: number) => result.rows.find((r) => r.target === t)!;

    // Fully traced: exactly the design's two spans per request (server + client), all reaching the
    // sink. The tolerance covers requests still in flight when a wrk window ends.
    expect(byTarget(5).spansPerReq).toBeGreaterThanOrEqual(1.9);
    expect(byTarget(5).spansPerReq).toBeLessThanOrEqual(2.1);
    expect(byTarget(5).otlpTraceBytesPerReq).toBeGreaterThan(0);
    // Two proxy threads: still two spans per request, whichever thread served it.
    expect(byTarget(6).spansPerReq).toBeGreaterThanOrEqual(1.9);
    expect(byTarget(6).spansPerReq).toBeLessThanOrEqual(2.1);
    // Sampler always_off, same exporter configuration: nothing reaches the sink.
    expect(byTarget(4).spansPerReq).toBe(0);
    expect(byTarget(4).otlpTraceBytesPerReq).toBe(0);
    // The auto-instrumented peer exports too (how many spans is its business, not asserted).
    expect(byTarget(3).spansPerReq).toBeGreaterThan(0);
  });
});
