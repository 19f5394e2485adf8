/**
 * Session resumption (docs/protocol.md, "Resuming a session"). The connector mints a resume
 * credential for each backend session it opens for an agent that asked for one; the relay hands
 * it to the agent as a token; when the agent's relay dies, the agent presents the token on a new
 * upgrade (to any relay) and the connector re-attaches the same backend session.
 */

/**
 * RESUME_HEADER is the upgrade header of resumption. The agent sends `v1` to ask for a resume
 * credential, or `v1 <token>` to resume; the relay answers `v1` when it relays credentials.
 */
export const RESUME_HEADER = 'Switchboard-Resume';

/**
 * LOST_LINK_CLOSES are the connector-link closes that *lose* a link rather than end it on purpose:
 * none received (1005, 1006: a crash, a cut connection, silence), going away (1001: a relay
 * shutting down), an internal error (1011). After one, the connector keeps its resumable sessions
 * for a resume and the relay tells their agents 4509 (resume); after any other close (4401 revoked,
 * 4402 expired, 1002 a protocol error) both sides end them. One rule, read by both.
 */
export const LOST_LINK_CLOSES: ReadonlySet<number> = new Set([1001, 1005, 1006, 1011]);

/** MAX_RESUME_TOKEN_CHARS bounds a token in a header (it holds a SPIFFE ID of up to 2048 bytes). */
export const MAX_RESUME_TOKEN_CHARS = 4096;

const CREDENTIAL_PART = /^[A-Za-z0-9_-]{16,64}$/;

/** ResumeCredential is what the connector mints: `id` names the session, `secret` proves the holder. */
export interface ResumeCredential {
  id: string;
  secret: string;
}

/** ResumeToken is what the agent holds: the credential, and where the session lives. */
export interface ResumeToken extends ResumeCredential {
  /** connector is the SPIFFE ID of the connector holding the backend session. */
  connector: string;
  server: string;
}

/** ResumeTokenError is a token that does not parse; the relay refuses the upgrade with 400. */
export class ResumeTokenError extends Error {
  constructor(message: string) {
    super(`resume: ${message}`);
    this.name = 'ResumeTokenError';
  }
}

/** isCredentialPart reports whether `v` is a well-formed credential id or secret (base64url, 16–64 chars). */
export function isCredentialPart(v: unknown): v is string {
  return typeof v === 'string' && CREDENTIAL_PART.test(v);
}

/** encodeResumeToken writes a token as the agent keeps and sends it: base64url of its JSON. */
export function encodeResumeToken(t: ResumeToken): string {
  return Buffer.from(JSON.stringify({ v: 1, c: t.connector, s: t.server, i: t.id, k: t.secret }), 'utf8').toString('base64url');
}

/** decodeResumeToken reads a token; throws {@link ResumeTokenError} naming what is wrong. */
export function decodeResumeToken(text: string): ResumeToken {
  if (text.length === 0 || text.length > MAX_RESUME_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(text)) throw new ResumeTokenError('the token is not base64url of at most 4096 characters');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new ResumeTokenError('the token does not hold JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ResumeTokenError('the token does not hold an object');
  const o = v as Record<string, unknown>;
  if (o.v !== 1) throw new ResumeTokenError('unknown token version');
  if (typeof o.c !== 'string' || !o.c.startsWith('spiffe://')) throw new ResumeTokenError('the token names no connector');
  if (typeof o.s !== 'string' || o.s.length === 0) throw new ResumeTokenError('the token names no server');
  if (!isCredentialPart(o.i) || !isCredentialPart(o.k)) throw new ResumeTokenError('the token carries no well-formed credential');
  return { connector: o.c, server: o.s, id: o.i, secret: o.k };
}

/**
 * parseResumeHeader reads the agent's upgrade header: undefined (absent or another version: no
 * resumption), `{ offer: true }` for `v1`, `{ offer: true, token }` for `v1 <token>`. A malformed
 * token throws {@link ResumeTokenError}.
 */
export function parseResumeHeader(value: string | string[] | undefined): { offer: true; token?: ResumeToken } | undefined {
  if (typeof value !== 'string') return undefined;
  const [version, token, ...rest] = value.trim().split(/\s+/);
  if (version !== 'v1') return undefined;
  if (rest.length > 0) throw new ResumeTokenError('the header holds more than a version and a token');
  return token === undefined ? { offer: true } : { offer: true, token: decodeResumeToken(token) };
}

/**
 * SessionInfo is the binary message (`{ type: 'session', … }`) the relay sends an agent that
 * offered resumption once the backend session is open: the token to resume it with, for how
 * long after a loss the connector keeps it, and whether this session is a resumed one.
 */
export interface SessionInfo {
  type: 'session';
  resumed: boolean;
  token: string;
  graceMs: number;
}

/** readSessionInfo checks a parsed binary message; undefined when it is not a well-formed SessionInfo. */
export function readSessionInfo(v: unknown): SessionInfo | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.type !== 'session' || typeof o.resumed !== 'boolean' || typeof o.token !== 'string' || o.token.length > MAX_RESUME_TOKEN_CHARS) return undefined;
  if (typeof o.graceMs !== 'number' || !Number.isInteger(o.graceMs) || o.graceMs < 0) return undefined;
  return { type: 'session', resumed: o.resumed, token: o.token, graceMs: o.graceMs };
}
