const MAX_REASON_BYTES = 120;

/** sendableCloseCode maps a code from the wire to one a WebSocket close frame may carry, else `fallback`. */
export function sendableCloseCode(code: unknown, fallback: number): number {
  if (typeof code !== 'number' || !Number.isInteger(code)) return fallback;
  if (code === 1000 || code === 1001 || code === 1002 || code === 1003) return code;
  if (code >= 1007 && code <= 1014) return code;
  if (code >= 3000 && code <= 4999) return code;
  return fallback;
}

/** truncateReason keeps a close reason within the 123 bytes a close frame allows. */
export function truncateReason(reason: unknown): string {
  const s = typeof reason === 'string' ? reason : '';
  if (Buffer.byteLength(s) <= MAX_REASON_BYTES) return s;
  let out = s.slice(0, MAX_REASON_BYTES);
  while (Buffer.byteLength(out) > MAX_REASON_BYTES - 3) out = out.slice(0, -1);
  return `${out}...`;
}
