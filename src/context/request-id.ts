import { randomUUID } from 'node:crypto';

const MAX_LENGTH = 128;

/** 1-128 characters of [A-Za-z0-9._:-]; anything else is replaced, never echoed. */
export function isValidRequestId(value: string): boolean {
  const len = value.length;
  if (len === 0 || len > MAX_LENGTH) return false;
  for (let i = 0; i < len; i++) {
    const c = value.charCodeAt(i);
    const ok =
      (c >= 48 && c <= 58) || // 0-9 and ':'
      (c >= 65 && c <= 90) || // A-Z
      (c >= 97 && c <= 122) || // a-z
      c === 45 || c === 46 || c === 95; // - . _
    if (!ok) return false;
  }
  return true;
}

/** The caller's X-Request-ID when valid, otherwise a fresh UUID. */
export function resolveRequestId(inbound: string | string[] | undefined): string {
  return typeof inbound === 'string' && isValidRequestId(inbound) ? inbound : randomUUID();
}
