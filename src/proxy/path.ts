/**
 * Normalises a request path before route matching, so that a request cannot reach a route (or,
 * after prefix stripping, an upstream path) other than the one its normalised form names:
 * `%2e` → `.`, `//` → `/`, and `.` / `..` segments resolved (RFC 3986 §5.2.4). Encoded slashes
 * and backslashes (`%2f`, `%5c`, `\`) are refused: upstreams disagree on whether they separate
 * segments, which is exactly what a traversal needs.
 *
 * Returns the path unchanged (same string) in the common case, a new string when it changed, or
 * null when the path must be refused with 400.
 */
export function normalizePath(path: string): string | null {
  let needsWork = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 92 /* \ */) return null;
    if (c === 37 /* % */) {
      const a = path.charCodeAt(i + 1) | 0x20;
      const b = path.charCodeAt(i + 2) | 0x20;
      if (a === 0x32 /* 2 */ && b === 0x66 /* f */) return null;
      if (a === 0x35 /* 5 */ && b === 0x63 /* c */) return null;
      if (a === 0x32 && b === 0x65 /* e */) needsWork = true;
    } else if (c === 47 /* / */) {
      const next = path.charCodeAt(i + 1);
      if (next === 47 || next === 46 /* . */) needsWork = true;
    }
  }
  if (!needsWork) return path;
  const decoded = path.replace(/%2e/gi, '.');
  const out: string[] = [];
  const segments = decoded.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '' && !last) {
      // "//" collapses
    } else {
      out.push(seg);
    }
  }
  return `/${out.join('/')}`;
}
