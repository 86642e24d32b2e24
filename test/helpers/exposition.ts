/**
 * Parses Prometheus text exposition format 0.0.4 strictly enough for assertions: every sample
 * line must be `name{labels} value`, every family must have one TYPE, and samples must belong to
 * a declared family. Throws on anything else, so malformed output fails the test.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const SAMPLE_RE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9.e+-]+|NaN|\+Inf|-Inf))(?: (-?[0-9]+))?$/;
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/gy;

function parseLabels(text: string | undefined, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!text) return labels;
  LABEL_RE.lastIndex = 0;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = LABEL_RE.exec(text)) !== null) {
    if (m[1]! in labels) throw new Error(`duplicate label ${m[1]} in: ${line}`);
    labels[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    consumed = LABEL_RE.lastIndex;
  }
  if (consumed !== text.length) throw new Error(`malformed labels in: ${line}`);
  return labels;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const [, name, ...help] = line.split(' ').slice(1);
      void name;
      const fam = line.split(' ')[2]!;
      current = families.get(fam) ?? { name: fam, type: '', help: help.join(' '), samples: [] };
      families.set(fam, current);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      const fam = families.get(name!) ?? { name: name!, type: '', help: '', samples: [] };
      if (fam.type) throw new Error(`second TYPE line for ${name}`);
      fam.type = type!;
      families.set(name!, fam);
      current = fam;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE_RE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const name = m[1]!;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const fam = families.get(name) ?? families.get(base);
    if (!fam || (current && fam !== current)) throw new Error(`sample outside its family: ${line}`);
    fam.samples.push({ name, labels: parseLabels(m[2], line), value: Number(m[3]) });
  }
  for (const fam of families.values()) if (!fam.type) throw new Error(`family ${fam.name} has no TYPE`);
  return families;
}
