// Child processes of the benchmark: spawning, readiness, /proc sampling, and guaranteed cleanup.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The last few KB of stderr (and stdout when not consumed elsewhere), for error messages. */
  tail(): string;
  exited: Promise<number | null>;
  alive(): boolean;
}

const running = new Set<Proc>();

/**
 * Spawns a process in its own process group (detached), so that killing the group also
 * reaches anything it forks, and registers it for cleanup on exit.
 */
export function start(name: string, cmd: string, args: string[], opts: SpawnOptions & { onStdout?: (chunk: string) => void } = {}): Proc {
  const { onStdout, ...spawnOpts } = opts;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts, detached: true });
  if (child.pid === undefined) throw new Error(`${name}: could not spawn ${cmd}`);
  let tail = '';
  const keep = (chunk: string) => {
    tail = (tail + chunk).slice(-4096);
  };
  child.stderr?.setEncoding('utf8').on('data', keep);
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (onStdout ? onStdout(chunk) : keep(chunk)));
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
    child.once('error', (err) => {
      keep(String(err));
      resolve(-1);
    });
  });
  const proc: Proc = {
    name,
    child,
    pid: child.pid,
    tail: () => tail,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** SIGTERM (or `signal`), then SIGKILL to the whole group if it has not exited within `graceMs`. */
export async function stop(proc: Proc, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<number | null> {
  if (proc.alive()) killGroup(proc.pid, signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), graceMs)));
  const result = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (result === 'timeout') {
    killGroup(proc.pid, 'SIGKILL');
    return proc.exited;
  }
  // Anything the process left behind in its group (nginx workers, say) goes too.
  killGroup(proc.pid, 'SIGKILL');
  return result;
}

/** Kills every process the benchmark started; synchronous, so it also works from an 'exit' handler. */
export function killAll(): void {
  for (const proc of running) killGroup(proc.pid, 'SIGKILL');
  running.clear();
}

/** A port that was free a moment ago (the kernel picks it; a race with other programs is unlikely). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Waits until `port` accepts TCP connections; fails early if the process exits. Bounded by `timeoutMs`. */
export async function waitForPort(proc: Proc, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.alive()) throw new Error(`${proc.name} exited before listening on ${port}:\n${proc.tail()}`);
    if (await canConnect(port)) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} did not listen on ${port} within ${timeoutMs} ms:\n${proc.tail()}`);
    await sleep(50);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const CLK_TCK = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(out.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** [user, system] CPU time in microseconds from a /proc stat file (clock-tick resolution); throws once it is gone. */
function statTimes(path: string): [number, number] {
  const stat = readFileSync(path, 'utf8');
  // Fields after "pid (comm) ": the command name may contain spaces, so split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [(Number(fields[11]) * 1e6) / CLK_TCK, (Number(fields[12]) * 1e6) / CLK_TCK]; // utime (14), stime (15)
}

/** User + system CPU time of the process so far, in microseconds (from /proc/<pid>/stat, clock-tick resolution). */
export function cpuMicros(pid: number): number {
  try {
    const [user, system] = statTimes(`/proc/${pid}/stat`);
    return user + system;
  } catch {
    return NaN;
  }
}

/** CPU time so far split by thread, in microseconds: the main thread's user and system time, and all other threads' (V8's helpers, libuv's pool, worker threads). */
export interface ThreadCpu {
  mainUser: number;
  mainSystem: number;
  others: number;
}

/** The process's CPU time by thread (from /proc/<pid>/task/<tid>/stat); NaN fields once the process is gone. */
export function threadCpuMicros(pid: number): ThreadCpu {
  const result: ThreadCpu = { mainUser: NaN, mainSystem: NaN, others: 0 };
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return { mainUser: NaN, mainSystem: NaN, others: NaN };
  }
  for (const tid of tids) {
    let user: number, system: number;
    try {
      [user, system] = statTimes(`/proc/${pid}/task/${tid}/stat`);
    } catch {
      continue; // a thread that ended between the listing and the read
    }
    if (tid === String(pid)) {
      result.mainUser = user;
      result.mainSystem = system;
    } else result.others += user + system;
  }
  return result;
}

/** Resident set size in bytes (VmRSS from /proc/<pid>/status), or NaN once the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples RSS every `everyMs` until stopped; returns the maximum seen. */
export function rssSampler(pid: number, everyMs = 200): { stop(): number } {
  let max = rssBytes(pid);
  const timer = setInterval(() => {
    const v = rssBytes(pid);
    if (v > max || Number.isNaN(max)) max = v;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const v = rssBytes(pid);
      return v > max ? v : max;
    },
  };
}

/** Machine-wide CPU time from /proc/stat, in microseconds summed over all cores: busy (incl. steal) and total. */
export function machineCpu(): { busyUs: number; totalUs: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is already in user)
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = user + nice + system + irq + softirq + steal;
    return { busyUs: (busy * 1e6) / CLK_TCK, totalUs: ((busy + idle + iowait) * 1e6) / CLK_TCK };
  } catch {
    return { busyUs: NaN, totalUs: NaN };
  }
}

/**
 * CPU of the bench process itself (sink, samplers) and of its reaped children (wrk, once it has
 * exited), from /proc/self/stat utime+stime and cutime+cstime.
 */
export function benchCpu(): { selfUs: number; reapedChildrenUs: number } {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return { selfUs: ((f[11]! + f[12]!) * 1e6) / CLK_TCK, reapedChildrenUs: ((f[13]! + f[14]!) * 1e6) / CLK_TCK };
  } catch {
    return { selfUs: NaN, reapedChildrenUs: NaN };
  }
}
