// One /metrics for a gateway whose proxy runs on several threads: each thread has its own meter
// provider, so their expositions are merged into one, the way a single-threaded gateway would
// have counted. Counters, histograms and summable gauges add up; what describes the whole process
// is taken once; what describes one thread's runtime keeps a `worker` label per thread.

export type MergeRule = 'sum' | 'first' | 'min' | 'per-worker';

/** How a metric family is merged across the proxy threads. */
export function mergeRuleFor(family: string): MergeRule {
  // The process's resource, CPU time and RSS: every thread reads the same process.
  if (family === 'target_info' || family.startsWith('process_')) return 'first';
  // Event loop, heap and GC belong to one thread (one V8 isolate each).
  if (family.startsWith('nodejs_') || family.startsWith('v8js_')) return 'per-worker';
  // Every thread checks every upstream: an upstream is up only if all of them found it up.
  if (family === 'gateway_upstream_up') return 'min';
  // Each thread has its own circuit breaker per upstream.
  if (family === 'gateway_upstream_circuit_state') return 'per-worker';
  return 'sum';
}

interface Family {
  header: string[];
  /** Series key (`name{labels}`) → value, in first-seen order. */
  samples: Map<string, number>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/;

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

function formatValue(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function withWorker(name: string, labels: string | undefined, worker: number): string {
  const label = `worker="${worker}"`;
  return labels === undefined || labels === '{}' ? `${name}{${label}}` : `${name}{${label},${labels.slice(1)}`;
}

/**
 * Merges Prometheus text expositions (format 0.0.4), one per proxy thread, `texts[i]` being
 * worker i + 1's. Families keep the order in which they first appear; a family's HELP/TYPE/UNIT
 * lines are taken from the first exposition that has it.
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, Family>();
  texts.forEach((text, index) => {
    const worker = index + 1;
    let name = '';
    let family: Family | undefined;
    let rule: MergeRule = 'sum';
    // Whether this exposition introduced the current family (then its header lines are the ones kept).
    let introduced = false;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('# ')) {
        const [, keyword, metric] = line.split(' ', 3);
        if ((keyword !== 'HELP' && keyword !== 'TYPE' && keyword !== 'UNIT') || metric === undefined) continue;
        if (metric !== name) {
          name = metric;
          family = families.get(name);
          introduced = family === undefined;
          if (family === undefined) families.set(name, (family = { header: [], samples: new Map() }));
          rule = mergeRuleFor(name);
        }
        if (introduced) family!.header.push(line);
        continue;
      }
      const m = SAMPLE.exec(line);
      if (m === null || family === undefined) continue;
      const [, series, labels, raw] = m as unknown as [string, string, string | undefined, string];
      const value = parseValue(raw);
      const key = rule === 'per-worker' ? withWorker(series, labels, worker) : `${series}${labels ?? ''}`;
      const had = family.samples.get(key);
      if (had === undefined) family.samples.set(key, value);
      else if (rule === 'sum') family.samples.set(key, had + value);
      else if (rule === 'min') family.samples.set(key, Math.min(had, value));
      // 'first': the first thread's value stays.
    }
  });
  let out = '';
  for (const family of families.values()) {
    for (const line of family.header) out += `${line}\n`;
    for (const [key, value] of family.samples) out += `${key} ${formatValue(value)}\n`;
  }
  return out;
}
