/** Start-up helpers shared by the demo programs: one-line failures and bounded numeric settings. */
export function failWith(program: string): (message: string) => never {
  return (message: string): never => {
    process.stderr.write(`${program}: ${message}\n`);
    process.exit(1);
  };
}

export function numberEnv(name: string, fallback: number, min: number, max: number, fail: (message: string) => never): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) fail(`${name}=${raw}: must be a number in [${min}, ${max}]`);
  return value;
}
