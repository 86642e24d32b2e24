// Summarises a V8 .cpuprofile (written by `node --cpu-prof`) as self time per function.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface SelfTimeRow {
  function: string;
  location: string;
  /** The caller that accounts for most of this self time (what to look at for native frames like writev). */
  topCaller: string;
  selfMs: number;
  /** Share of the busy time (everything except "(idle)"). */
  busyPct: number;
}

export interface GroupRow {
  group: string;
  selfMs: number;
  busyPct: number;
}

export interface ProfileSummary {
  /** Whether only samples inside the load windows were counted (false: the whole process lifetime). */
  windowsOnly: boolean;
  totalMs: number;
  idleMs: number;
  busyMs: number;
  gcMs: number;
  top: SelfTimeRow[];
  /** Self time per package / gateway directory (native frames count for the JavaScript that called them). */
  groups: GroupRow[];
}

/** "node_modules/@opentelemetry/sdk-trace/..." → "@opentelemetry/sdk-trace"; "dist/src/proxy/x.js" → "gateway src/proxy". */
function groupOf(url: string, root: string): string {
  const path = url.replace(/^file:\/\//, '');
  if (path.startsWith('node:')) return 'node core (http, net, streams, fs)';
  if (path.startsWith('wasm://')) return 'undici llhttp (wasm)';
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const parts = path.slice(nm + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const rel = path.startsWith(root) ? path.slice(root.length + 1) : path;
  const m = /^dist\/src\/([^/]+)(\/|\.js)/.exec(rel);
  if (m) return m[2] === '/' ? `gateway src/${m[1]}` : `gateway src/${m[1]}.ts`;
  return rel;
}

function location(cf: CallFrame, root: string): string {
  if (!cf.url) return '(native)';
  let url = cf.url.replace(/^file:\/\//, '');
  if (url.startsWith(root)) url = url.slice(root.length + 1);
  // lineNumber is 0-based in the profile format.
  return `${url}:${cf.lineNumber + 1}`;
}

/**
 * Self time per function, summed over every node with the same function and location. Sample
 * time deltas are used rather than hit counts × interval, as they are what V8 actually measured.
 * With `windowsUs` (CLOCK_MONOTONIC µs, the clock of both V8's profile timestamps and
 * process.hrtime), only samples taken during those intervals count, so start-up (module
 * compilation) and shutdown do not crowd the list.
 */
export function summarizeProfile(file: string, root: string, topN = 25, windowsUs: Array<[number, number]> = []): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const child of n.children ?? []) parentOf.set(child, n.id);
  }
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const inWindow = (t: number) => windowsUs.some(([a, b]) => t >= a && t <= b);
  // Only restrict to the windows if the clocks line up (some samples fall inside them).
  let ts = profile.startTime;
  let any = false;
  for (let i = 0; i < samples.length && !any; i++) any = inWindow((ts += deltas[i] ?? 0));
  const windowsOnly = windowsUs.length > 0 && any;
  // timeDeltas[i] is the time before sample i; attribute the interval after a sample to it.
  ts = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    ts += deltas[i] ?? 0;
    if (windowsOnly && !inWindow(ts)) continue;
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const agg = new Map<string, { fn: string; loc: string; us: number; callers: Map<string, number> }>();
  const groups = new Map<string, number>();
  const special = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);
  let idleUs = 0;
  let gcUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const cf = node.callFrame;
    const fn = cf.functionName || '(anonymous)';
    if (fn === '(idle)') idleUs += us;
    if (fn === '(garbage collector)') gcUs += us;
    const loc = location(cf, root);
    const key = `${fn}\u0000${loc}`;
    let entry = agg.get(key);
    if (!entry) agg.set(key, (entry = { fn, loc, us: 0, callers: new Map() }));
    entry.us += us;
    const parent = byId.get(parentOf.get(id) ?? -1);
    // Group: the nearest frame with a script URL (native code is charged to its JavaScript caller).
    let group = special.has(fn) ? fn : '';
    for (let g: ProfileNode | undefined = node; !group && g; g = byId.get(parentOf.get(g.id) ?? -1)) {
      if (g.callFrame.url) group = groupOf(g.callFrame.url, root);
    }
    group ||= '(native, no JavaScript caller)';
    groups.set(group, (groups.get(group) ?? 0) + us);
    if (parent) {
      const pcf = parent.callFrame;
      const caller = `${pcf.functionName || '(anonymous)'} ${location(pcf, root)}`;
      entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const top = [...agg.values()]
    .filter((e) => e.fn !== '(idle)')
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({
      function: e.fn,
      location: e.loc,
      topCaller: [...e.callers.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
      selfMs: e.us / 1000, busyPct: busyUs > 0 ? (100 * e.us) / busyUs : 0 }));
  const groupRows = [...groups.entries()]
    .filter(([g]) => g !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .map(([group, us]) => ({ group, selfMs: us / 1000, busyPct: busyUs > 0 ? (100 * us) / busyUs : 0 }));
  return { windowsOnly, groups: groupRows, totalMs: totalUs / 1000, idleMs: idleUs / 1000, busyMs: busyUs / 1000, gcMs: gcUs / 1000, top };
}
