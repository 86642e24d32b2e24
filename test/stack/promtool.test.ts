/**
 * The Prometheus configuration and alert rules, checked with Debian's promtool (2.42): config
 * syntax, rule syntax, the unit tests in prometheus/tests/, and that those unit tests really
 * pin every alert down (each alert's tests fail when its expression is replaced by one that never
 * fires, and by one that always fires).
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, at, hasBinary } from './helpers.js';

const hasPromtool = hasBinary('promtool');
if (!hasPromtool) console.warn('test/stack/promtool: SKIPPED — promtool not found (Debian package "prometheus"; .ci/run installs it)');

const ruleFiles = readdirSync(at('prometheus/rules')).filter((f) => f.endsWith('.yml')).map((f) => `prometheus/rules/${f}`);
const testFiles = readdirSync(at('prometheus/tests')).filter((f) => f.endsWith('.yml')).map((f) => `prometheus/tests/${f}`);

function promtool(args: string[], cwd = ROOT) {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function promtoolAsync(args: string[], cwd: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('promtool', args, { cwd });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('close', (status) => resolve({ status, output }));
  });
}

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rulesByFile = new Map<string, { groups: Array<{ name: string; rules: Rule[] }> }>(
  ruleFiles.map((f) => [f, parse(readFileSync(at(f), 'utf8'))]),
);
const alerts = [...rulesByFile.values()].flatMap((doc) => doc.groups.flatMap((g) => g.rules)).filter((r) => r.alert);

/** The unit-test files that load the rule file defining `alert` (only those need to run for its mutants). */
function testsFor(alert: string): string[] {
  const ruleFile = [...rulesByFile].find(([, doc]) => doc.groups.some((g) => g.rules.some((r) => r.alert === alert)))![0];
  const base = ruleFile.split('/').pop()!;
  const files = testFiles.filter((f) => (parse(readFileSync(at(f), 'utf8')).rule_files ?? []).some((r: string) => r.endsWith(`/${base}`)));
  if (files.length === 0) throw new Error(`no unit-test file loads ${ruleFile}`);
  return files;
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!hasPromtool)('promtool', () => {
  it('accepts prometheus/prometheus.yml (and the rule files it loads)', () => {
    const r = promtool(['check', 'config', 'prometheus/prometheus.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.status, r.output).toBe(0);
    // The glob must actually load the rule files, not match nothing.
    expect(r.output).toContain(`${ruleFiles.length} rule files found`);
  });

  it('accepts every rule file', () => {
    const r = promtool(['check', 'rules', ...ruleFiles]);
    expect(r.status, r.output).toBe(0);
  });

  it('passes the unit tests in prometheus/tests/', () => {
    const r = promtool(['test', 'rules', ...testFiles]);
    expect(r.status, r.output).toBe(0);
    expect(r.output).not.toContain('FAILED');
  });
});

describe('alert rules', () => {
  it('cover what the stack must alert on, each with severity, summary, description and a runbook', () => {
    const names = alerts.map((a) => a.alert);
    for (const required of [
      'GatewayHigh5xxRatio',
      'GatewayHighP99Latency',
      'GatewayUpstreamDown',
      'GatewayUpstreamFailing',
      'SpansRefusedByCollector',
      'SpansFailedToTempo',
      'SpansDroppedQueueFull',
      'OtelCollectorDown',
      'EventLoopDelayHigh',
      'ScrapeTargetDown',
    ]) {
      expect(names).toContain(required);
    }
    expect(new Set(names).size).toBe(names.length);
    const runbooks = readFileSync(at('prometheus/RUNBOOKS.md'), 'utf8');
    const anchors = new Set([...runbooks.matchAll(/^## (\S+)$/gm)].map((m) => m[1]!.toLowerCase()));
    for (const a of alerts) {
      expect(a.labels?.severity, a.alert).toMatch(/^(page|warning)$/);
      expect(a.for, `${a.alert}: a "for" keeps one bad scrape from paging`).toMatch(/^\d+m$/);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
      const runbook = a.annotations?.runbook_url ?? '';
      expect(runbook, a.alert).toBe(`prometheus/RUNBOOKS.md#${a.alert!.toLowerCase()}`);
      expect(anchors.has(a.alert!.toLowerCase()), `RUNBOOKS.md has a section "## ${a.alert}"`).toBe(true);
    }
  });

  it('every alert has a unit test', () => {
    const tested = new Set<string>();
    for (const f of testFiles) {
      const doc = parse(readFileSync(at(f), 'utf8'));
      for (const t of doc.tests ?? []) for (const a of t.alert_rule_test ?? []) if ((a.exp_alerts ?? []).length > 0) tested.add(a.alertname);
    }
    for (const a of alerts) expect(tested.has(a.alert!), `${a.alert} has a test case where it fires`).toBe(true);
  });

  // Mutation check: if an alert's tests still pass with a broken expression, they prove nothing.
  it.skipIf(!hasPromtool)(
    "each alert's unit tests fail when its expression never fires, and when it always fires",
    async () => {
      const work = mkdtempSync(join(tmpdir(), 'promtool-mutants-'));
      tmpDirs.push(work);
      cpSync(at('prometheus'), join(work, 'prometheus'), { recursive: true });
      const mutants: Array<{ alert: string; kind: string; dir: string }> = [];
      for (const a of alerts) {
        for (const [kind, expr] of [
          ['never fires', 'vector(1) == 0'],
          ['always fires', 'vector(1)'],
        ] as const) {
          const dir = join(work, `${a.alert}-${kind.replace(' ', '-')}`);
          cpSync(join(work, 'prometheus'), join(dir, 'prometheus'), { recursive: true });
          for (const [file, doc] of rulesByFile) {
            const copy = structuredClone(doc);
            for (const g of copy.groups) for (const r of g.rules) if (r.alert === a.alert) r.expr = expr;
            writeFileSync(join(dir, file), stringify(copy));
          }
          mutants.push({ alert: a.alert!, kind, dir });
        }
      }
      // Two at a time: the machine has two cores.
      const survivors: string[] = [];
      for (let i = 0; i < mutants.length; i += 2) {
        const batch = mutants.slice(i, i + 2);
        const results = await Promise.all(batch.map((m) => promtoolAsync(['test', 'rules', ...testsFor(m.alert)], m.dir)));
        results.forEach((r, j) => {
          if (r.status === 0) survivors.push(`${batch[j]!.alert} (${batch[j]!.kind})`);
        });
      }
      expect(survivors, 'alerts whose unit tests pass with a broken expression').toEqual([]);
    },
    60_000,
  );
});
