import type { SpanSummary, TraceSummary } from '../lookup/summary.js';

export interface RenderOptions {
  /** ANSI colours (only for a terminal, or with FORCE_COLOR). */
  color: boolean;
  /** Terminal width; the bar column takes what the other columns leave. */
  columns: number;
}

const SGR = { red: '31', green: '32', yellow: '33', bold: '1', dim: '2' } as const;

export function formatMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function fit(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text.padEnd(width);
}

/** `█` over the span's share of the trace, at its offset; at least one cell so short spans show. */
export function bar(span: Pick<SpanSummary, 'startOffsetMs' | 'durationMs'>, totalMs: number, width: number): string {
  const scale = totalMs > 0 ? width / totalMs : 0;
  const length = Math.min(width, Math.max(1, Math.round(span.durationMs * scale)));
  const start = Math.min(width - length, Math.max(0, Math.floor(span.startOffsetMs * scale)));
  return ' '.repeat(start) + '█'.repeat(length) + ' '.repeat(width - start - length);
}

function statusText(span: SpanSummary): string {
  const word = span.status === 'ERROR' ? 'ERROR' : 'ok';
  return span.httpStatus !== undefined ? `${span.httpStatus} ${word}` : word;
}

/** The terminal report: header lines, then one waterfall row per span, indented by depth. */
export function renderTrace(summary: TraceSummary, options: RenderOptions): string {
  const paint = (code: string, text: string): string => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const out: string[] = [];
  const root = summary.root;
  const source = summary.source === 'tempo' ? 'from Tempo' : "from this gateway's recent spans (other services' own spans are not included)";
  out.push(`${paint(SGR.bold, 'Trace')}    ${summary.traceId}  ${paint(SGR.dim, source)}`);

  const request = [root.method && root.route ? `${root.method} ${root.route}` : root.name];
  if (root.path) request.push(`(path ${root.path})`);
  const outcome = `${root.status ?? ''}${root.status !== undefined ? ' ' : ''}${root.ok ? 'ok' : 'FAILED'}`;
  out.push(
    `${paint(SGR.bold, 'Request')}  ${request.join(' ')} → ${paint(root.ok ? SGR.green : SGR.red, outcome)} in ${formatMs(root.durationMs)}, started ${root.startTime}` +
      (summary.requestId ? `, request ID ${summary.requestId}` : ''),
  );
  const upstreams = summary.upstreams.length > 0 ? `; upstreams: ${summary.upstreams.join(', ')}` : '';
  out.push(`${paint(SGR.bold, 'Services')} ${summary.services.join(', ')}${upstreams}; ${summary.spanCount} spans, ${summary.errorCount} with errors`);
  if (summary.cause) out.push(paint(SGR.red, `${paint(SGR.bold, 'Failed')}   ${summary.cause.service} › ${summary.cause.name} (${summary.cause.kind.toLowerCase()}): ${summary.cause.message}`));
  out.push('');

  // Columns: mark, service, span name (indented by depth), bar, duration, status.
  const serviceWidth = Math.min(24, Math.max(7, ...summary.spans.map((s) => s.service.length)));
  const labels = summary.spans.map((s) => `${'  '.repeat(s.depth)}${s.name} (${s.kind.toLowerCase()})`);
  const nameWidth = Math.min(48, Math.max(4, ...labels.map((l) => l.length)));
  const fixed = 2 + serviceWidth + 1 + nameWidth + 1 + 2 + 1 + 9 + 1 + 10;
  const barWidth = Math.max(10, Math.min(60, options.columns - fixed));
  const total = summary.durationMs;
  const scale = `0${formatMs(total).padStart(barWidth - 1)}`;
  out.push(paint(SGR.dim, `  ${'SERVICE'.padEnd(serviceWidth)} ${'SPAN'.padEnd(nameWidth)} │${scale}│ ${'DURATION'.padStart(9)} STATUS`));

  summary.spans.forEach((span, i) => {
    const failed = span.status === 'ERROR';
    const mark = failed ? paint(SGR.red, '✖ ') : '  ';
    const track = bar(span, total, barWidth);
    const row =
      `${paint(SGR.dim, fit(span.service, serviceWidth))} ${fit(labels[i]!, nameWidth)} │${failed ? paint(SGR.red, track) : paint(SGR.green, track)}│ ` +
      `${formatMs(span.durationMs).padStart(9)} ${failed ? paint(SGR.red, statusText(span)) : statusText(span)}`;
    out.push(mark + row);
    if (span.error) out.push(paint(SGR.red, `  ${' '.repeat(serviceWidth + 1)}${'  '.repeat(span.depth)}↳ ${span.error}`));
  });

  for (const note of summary.notes ?? []) out.push('', paint(SGR.yellow, `Note: ${note}`));
  if (summary.otherTraceIds?.length) out.push('', `Other traces with this request ID: ${summary.otherTraceIds.join(', ')}`);
  if (summary.grafanaUrl) out.push('', `Grafana: ${summary.grafanaUrl}`);
  return `${out.join('\n')}\n`;
}
