// Tables, medians and ratios for the benchmark results.
import type { LoadResult } from './load.ts';

/** One load window: what wrk measured plus what the bench read from the target. */
export interface Row extends LoadResult {
  round: number;
  target: number;
  name: string;
  connections: number;
  /** Target process CPU (utime + stime) over the load window ÷ requests. */
  cpuUsPerReq: number;
  /** The upstream's CPU over the same window ÷ requests (for reference; target 1 is the upstream). */
  upstreamCpuUsPerReq: number;
  rssMaxMB: number;
  /** CPU used by unrelated processes during the window, % of the whole machine: a noise gauge. */
  otherCpuPct: number;
  /** Per target instance (warm-up, probe and every window of that round), null when the target has no exporter. */
  spansPerReq: number | null;
  otlpTraceBytesPerReq: number | null;
  accessLogBytesPerReq: number | null;
  /** The gateway's own span accounting at the end of the round (gateway_telemetry_spans_total by outcome: exported, dropped, failed). */
  telemetrySpans?: Record<string, number>;
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

function medianOrNull(values: Array<number | null>): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length ? median(v) : null;
}

/** One row per (target, connections) with the median of every figure over the rounds. */
export function medians(rows: Row[]): Row[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.target}/${r.connections}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const out: Row[] = [];
  for (const g of groups.values()) {
    const first = g[0]!;
    const errorDetail: Record<string, number> = {};
    for (const r of g) for (const [k, v] of Object.entries(r.errorDetail)) errorDetail[k] = (errorDetail[k] ?? 0) + v;
    out.push({
      round: 0,
      target: first.target,
      name: first.name,
      connections: first.connections,
      requests: median(g.map((r) => r.requests)),
      durationS: median(g.map((r) => r.durationS)),
      reqPerSec: median(g.map((r) => r.reqPerSec)),
      p50Ms: median(g.map((r) => r.p50Ms)),
      p99Ms: median(g.map((r) => r.p99Ms)),
      // Errors are summed, not a median: any error in any round must show.
      errors: g.reduce((s, r) => s + r.errors, 0),
      errorDetail,
      cpuUsPerReq: median(g.map((r) => r.cpuUsPerReq)),
      upstreamCpuUsPerReq: median(g.map((r) => r.upstreamCpuUsPerReq)),
      rssMaxMB: median(g.map((r) => r.rssMaxMB)),
      otherCpuPct: median(g.map((r) => r.otherCpuPct)),
      spansPerReq: medianOrNull(g.map((r) => r.spansPerReq)),
      otlpTraceBytesPerReq: medianOrNull(g.map((r) => r.otlpTraceBytesPerReq)),
      accessLogBytesPerReq: medianOrNull(g.map((r) => r.accessLogBytesPerReq)),
    });
  }
  return out.sort((a, b) => b.connections - a.connections || a.target - b.target);
}

export interface Ratios {
  /** req/s ratios of target 5 to targets 2, 3, 4, 1 (and of target 6 to 5, 2, 3), per concurrency ("c50": {...}). */
  reqPerSec: Record<string, Record<string, number | null>>;
  /** p99 of target 5 minus p99 of target 2, in ms, at the lowest concurrency measured (8 by default). */
  p99DiffMs5minus2: { connections: number; ms: number | null };
}

export function ratios(med: Row[]): Ratios {
  const find = (t: number, c: number) => med.find((r) => r.target === t && r.connections === c);
  const conns = [...new Set(med.map((r) => r.connections))].sort((a, b) => b - a);
  const reqPerSec: Ratios['reqPerSec'] = {};
  for (const c of conns) {
    const five = find(5, c);
    const entry: Record<string, number | null> = {};
    for (const other of [2, 3, 4, 1]) {
      const o = find(other, c);
      entry[`5/${other}`] = five && o ? five.reqPerSec / o.reqPerSec : null;
    }
    const six = find(6, c);
    if (six) {
      for (const other of [5, 2, 3]) {
        const o = find(other, c);
        entry[`6/${other}`] = o ? six.reqPerSec / o.reqPerSec : null;
      }
    }
    reqPerSec[`c${c}`] = entry;
  }
  const low = conns.includes(8) ? 8 : (conns[conns.length - 1] ?? 8);
  const f5 = find(5, low);
  const f2 = find(2, low);
  return { reqPerSec, p99DiffMs5minus2: { connections: low, ms: f5 && f2 ? f5.p99Ms - f2.p99Ms : null } };
}

function fmt(v: number | null, digits = 0): string {
  if (v === null || !Number.isFinite(v)) return '–';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A GitHub-flavoured Markdown table: readable in a terminal and pasteable into the README. */
export function table(rows: Row[], opts: { relativeTo2?: boolean } = {}): string {
  const head = ['target', 'c', 'req/s', ...(opts.relativeTo2 ? ['× t2'] : []), 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req', 'RSS MB', 'spans/req', 'OTLP B/req', 'other load'];
  const body = rows.map((r) => {
    const t2 = rows.find((x) => x.target === 2 && x.connections === r.connections);
    return [
      `${r.target}. ${r.name}`,
      String(r.connections),
      fmt(r.reqPerSec),
      ...(opts.relativeTo2 ? [t2 ? fmt(r.reqPerSec / t2.reqPerSec, 2) : '–'] : []),
      fmt(r.p50Ms, 2),
      fmt(r.p99Ms, 2),
      String(r.errors),
      fmt(r.cpuUsPerReq),
      fmt(r.rssMaxMB),
      fmt(r.spansPerReq, 2),
      fmt(r.otlpTraceBytesPerReq),
      `${fmt(r.otherCpuPct)}%`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i < 2 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), sep, ...body.map(line)].join('\n');
}

export function ratiosText(r: Ratios): string {
  const lines: string[] = [];
  for (const [c, entry] of Object.entries(r.reqPerSec)) {
    lines.push(`req/s ratios at ${c}: ${Object.entries(entry).map(([k, v]) => `${k} = ${fmt(v, 2)}`).join(', ')}`);
  }
  const d = r.p99DiffMs5minus2;
  lines.push(`p99 difference 5−2 at c${d.connections}: ${d.ms === null ? '–' : `${d.ms >= 0 ? '+' : ''}${fmt(d.ms, 2)} ms`}`);
  return lines.join('\n');
}
