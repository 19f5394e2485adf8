import { GuardError } from '../errors.js';
import { validToolName, type ToolSummary } from './tool-definition.js';

/** ToolPin is the pinned definition of one tool. Times are ISO 8601. */
export interface ToolPin {
  readonly hash: string;
  readonly firstSeen: string;
  /** approvedAt is set when an operator approved this definition (required in `strict` mode). */
  readonly approvedAt?: string;
  readonly summary: ToolSummary;
}

/**
 * PendingDefinition is a definition waiting for an operator: a drift from the pin (`pinnedHash`
 * set) or, in `strict` mode, a tool not approved yet (`pinnedHash` null, or equal to `seenHash`
 * for a tofu pin never approved). While it is pending the tool is hidden and refused.
 */
export interface PendingDefinition {
  readonly pinnedHash: string | null;
  readonly seenHash: string;
  readonly seenAt: string;
  readonly summary: ToolSummary;
}

/**
 * The pin store's file: `{ "version": 1, "servers": { "<server>": { "tools": { "<name>": ToolPin },
 * "pending": { "<name>": PendingDefinition } } } }`, checked field by field on load — a file that
 * does not have this shape is refused, never half-used.
 */

/** FILE_VERSION is the `version` the pin file carries. */
export const FILE_VERSION = 1;
const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** ServerState is one server's pins and pending definitions, in memory. */
export interface ServerState {
  tools: Map<string, ToolPin>;
  pending: Map<string, PendingDefinition>;
}

/** parsePinFile reads a pin file's text; throws `GUARD_ERR_PIN_STORE` naming the key path that is wrong. */
export function parsePinFile(text: string, source: string): Map<string, ServerState> {
  const servers = new Map<string, ServerState>();
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new GuardError('GUARD_ERR_PIN_STORE', `pinning: ${source}: not valid JSON`, { cause: err });
  }
  const bad = (path: string, rule: string): never => {
    throw new GuardError('GUARD_ERR_PIN_STORE', `pinning: ${source}: ${path}: ${rule}`, { path });
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(doc)) return bad('(root)', 'must be an object');
  if (doc.version !== FILE_VERSION) bad('version', `must be ${FILE_VERSION}`);
  if (!isObj(doc.servers)) return bad('servers', 'must be an object');
  const str = (v: unknown, path: string): string => (typeof v === 'string' ? v : bad(path, 'must be a string'));
  const hash = (v: unknown, path: string): string => (typeof v === 'string' && HASH_PATTERN.test(v) ? v : bad(path, 'must be a hex SHA-256'));
  const summary = (v: unknown, path: string): ToolSummary => {
    if (!isObj(v)) return bad(path, 'must be an object');
    const inputs = Array.isArray(v.inputs) ? v.inputs.map((x, i) => str(x, `${path}.inputs[${i}]`)) : bad(`${path}.inputs`, 'must be a list');
    return {
      ...(v.title !== undefined ? { title: str(v.title, `${path}.title`) } : {}),
      description: str(v.description, `${path}.description`),
      inputs,
    };
  };
  for (const [server, s] of Object.entries(doc.servers)) {
    const at = `servers.${server}`;
    if (!isObj(s)) return bad(at, 'must be an object');
    const state: ServerState = { tools: new Map(), pending: new Map() };
    for (const [name, p] of Object.entries(isObj(s.tools) ? s.tools : bad(`${at}.tools`, 'must be an object'))) {
      const pat = `${at}.tools.${name}`;
      if (!validToolName(name)) bad(pat, 'not a valid tool name');
      if (!isObj(p)) return bad(pat, 'must be an object');
      state.tools.set(name, {
        hash: hash(p.hash, `${pat}.hash`),
        firstSeen: str(p.firstSeen, `${pat}.firstSeen`),
        ...(p.approvedAt !== undefined ? { approvedAt: str(p.approvedAt, `${pat}.approvedAt`) } : {}),
        summary: summary(p.summary, `${pat}.summary`),
      });
    }
    for (const [name, p] of Object.entries(isObj(s.pending) ? s.pending : bad(`${at}.pending`, 'must be an object'))) {
      const pat = `${at}.pending.${name}`;
      if (!validToolName(name)) bad(pat, 'not a valid tool name');
      if (!isObj(p)) return bad(pat, 'must be an object');
      state.pending.set(name, {
        pinnedHash: p.pinnedHash === null ? null : hash(p.pinnedHash, `${pat}.pinnedHash`),
        seenHash: hash(p.seenHash, `${pat}.seenHash`),
        seenAt: str(p.seenAt, `${pat}.seenAt`),
        summary: summary(p.summary, `${pat}.summary`),
      });
    }
    servers.set(server, state);
  }
  return servers;
}
