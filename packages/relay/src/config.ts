import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseAuditSection, type RelayAuditConfig } from './audit/config.js';
import { RelayConfigError } from './errors.js';
import {
  SchemaViolation,
  checkInteger,
  checkObject,
  checkString,
  formatPath,
  isPlainObject,
  type PathSegment,
} from './internal/schema.js';
import { YamlSyntaxError, parseYaml } from './internal/yaml-file.js';
import { GUARD_CONFIG_KEYS, parseGuardConfig, type JwtSignerOptions } from './session/guard-config.js';
import type { PinsOptions } from './session/pin-runtime.js';

/** RelayLimits bound what one peer can make the relay hold or wait for. */
export interface RelayLimits {
  /** maxMessageBytes is the largest agent message (one WebSocket frame); larger closes the session with 1009. */
  maxMessageBytes: number;
  /** maxDepth is the deepest JSON nesting accepted in a message; deeper is refused with -32600. */
  maxDepth: number;
  /** maxServerMessageBytes is the largest server→agent message; larger closes the session with 1009. */
  maxServerMessageBytes: number;
  /** openTimeoutMs is how long a connector may take to open a backend session (then 4504). */
  openTimeoutMs: number;
  /** drainTimeoutMs is how long a shutdown lets open sessions finish. */
  drainTimeoutMs: number;
  /** maxSessionsPerLink bounds the sessions one connector link carries. */
  maxSessionsPerLink: number;
  /** sessionWindowBytes is the per-session flow-control window announced in WELCOME. */
  sessionWindowBytes: number;
}

/** DEFAULT_LIMITS are the limits used for every key relay.yaml leaves out. */
export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxMessageBytes: 1024 * 1024,
  maxDepth: 64,
  maxServerMessageBytes: 16 * 1024 * 1024,
  openTimeoutMs: 10_000,
  drainTimeoutMs: 30_000,
  maxSessionsPerLink: 1024,
  sessionWindowBytes: 256 * 1024,
});

const LIMIT_RANGES: Record<keyof RelayLimits, [number, number]> = {
  maxMessageBytes: [1024, 64 * 1024 * 1024],
  maxDepth: [2, 1000],
  maxServerMessageBytes: [1024, 256 * 1024 * 1024],
  openTimeoutMs: [100, 600_000],
  drainTimeoutMs: [0, 3_600_000],
  maxSessionsPerLink: [1, 65_536],
  sessionWindowBytes: [1024, 64 * 1024 * 1024],
};

/**
 * UnknownToolReply chooses how the relay answers a `tools/call` for a tool the agent may not use.
 * Both styles give a denied and a non-existent tool the same answer; they differ in how a denial
 * compares with the answer of a *server* for a tool it does not have (which the relay only
 * forwards when the policy allows that name, e.g. through a glob).
 *
 * - `jsonrpc-error` (default): the JSON-RPC error `{ code: -32602, message: 'Unknown tool: <name>' }`
 *   of the MCP specification's example; SDK clients throw an `McpError` with code -32602.
 * - `mcp-sdk`: byte for byte what the MCP TypeScript SDK's `McpServer` (1.x) sends for a tool it
 *   does not have — a *result* `{ content: [{ type: 'text', text: 'MCP error -32602: Tool <name> not found' }], isError: true }`.
 *   Choose it when the backends are SDK servers, so a denial looks exactly like their own answer.
 */
export type UnknownToolReply = 'mcp-sdk' | 'jsonrpc-error';

/** EnforcementOptions tune how refusals look on the wire. */
export interface EnforcementOptions {
  unknownToolReply: UnknownToolReply;
}

/** DEFAULT_ENFORCEMENT is used when relay.yaml has no `enforcement` section. */
export const DEFAULT_ENFORCEMENT: Readonly<EnforcementOptions> = Object.freeze({ unknownToolReply: 'jsonrpc-error' });

/** RelayConfig is relay.yaml after validation, with every path absolute and every limit set. */
export interface RelayConfig {
  /** listen is `host:port` (`[::]:8443` for IPv6) of the main mTLS listener. */
  listen: string;
  /** identity is the directory holding svid.pem, svid_key.pem and bundle.pem. */
  identity: string;
  /** policy is the path of policy.yaml. */
  policy: string;
  /** audit configures the tamper-evident trail (docs/audit.md). */
  audit: RelayAuditConfig;
  /** admin, when set, is the loopback listener for /healthz, /readyz and /metrics. */
  admin?: { listen: string };
  limits: RelayLimits;
  enforcement: EnforcementOptions;
  /** pins, when set, is the tool pin store (docs/policy.md, "Tool pinning"). */
  pins?: PinsOptions;
  /** jwtSigner, when set, mints JWT-SVIDs for servers with `identityToBackend`. */
  jwtSigner?: JwtSignerOptions;
  /** watchPolicy reloads policy.yaml when the file changes (default true). */
  watchPolicy: boolean;
}

/** ListenAddress is a parsed `host:port`. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** parseListenAddress reads `host:port` or `[v6]:port`; throws {@link RelayConfigError}. */
export function parseListenAddress(text: string, key = 'listen'): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new RelayConfigError(`config: ${key}: must be host:port (or [ipv6]:port) with a port from 0 to 65535, not ${JSON.stringify(text)}`, {
      path: key,
    });
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** resolveLimits fills `partial` with defaults and checks every value against its range. */
export function resolveLimits(partial: unknown, path: readonly PathSegment[] = ['limits']): RelayLimits {
  return wrap(() => resolveLimitsRaw(partial, path), undefined, undefined);
}

function resolveLimitsRaw(partial: unknown, path: readonly PathSegment[]): RelayLimits {
  if (partial === undefined) return { ...DEFAULT_LIMITS };
  const keys = Object.keys(LIMIT_RANGES) as (keyof RelayLimits)[];
  const o = checkObject(partial, path, keys);
  const out = { ...DEFAULT_LIMITS };
  for (const key of keys) {
    const [min, max] = LIMIT_RANGES[key];
    if (o[key] !== undefined) out[key] = checkInteger(o[key], [...path, key], min, max);
  }
  return out;
}

/** resolveEnforcement fills `partial` with defaults and checks it. */
export function resolveEnforcement(partial: unknown, path: readonly PathSegment[] = ['enforcement']): EnforcementOptions {
  return wrap(
    () => {
      if (partial === undefined) return { ...DEFAULT_ENFORCEMENT };
      const o = checkObject(partial, path, ['unknownToolReply']);
      const out = { ...DEFAULT_ENFORCEMENT };
      if (o.unknownToolReply !== undefined) {
        const v = checkString(o.unknownToolReply, [...path, 'unknownToolReply']);
        if (v !== 'mcp-sdk' && v !== 'jsonrpc-error') throw new SchemaViolation([...path, 'unknownToolReply'], 'must be jsonrpc-error or mcp-sdk');
        out.unknownToolReply = v;
      }
      return out;
    },
    undefined,
    undefined,
  );
}

/** checkAdminListen parses `admin.listen` and requires a loopback host. */
export function checkAdminListen(text: string): ListenAddress {
  const addr = parseListenAddress(text, 'admin.listen');
  if (!LOOPBACK.has(addr.host)) {
    throw new RelayConfigError(`config: admin.listen: must be a loopback address (127.0.0.1, ::1 or localhost), not ${addr.host}`, {
      path: 'admin.listen',
    });
  }
  return addr;
}

function wrap<T>(fn: () => T, source: string | undefined, locate: ((p: readonly PathSegment[]) => { line: number; col: number } | undefined) | undefined): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SchemaViolation) {
      const pos = locate?.(err.path);
      const where = source ? `${source}${pos ? `:${pos.line}:${pos.col}` : ''}: ` : '';
      throw new RelayConfigError(`config: ${where}${formatPath(err.path)}: ${err.rule}`, {
        path: formatPath(err.path),
        ...(pos ? { line: pos.line } : {}),
        cause: err,
      });
    }
    if (err instanceof RelayConfigError && source && !err.message.startsWith(`config: ${source}`)) {
      throw new RelayConfigError(err.message.replace(/^config: /, `config: ${source}: `), { path: err.path, cause: err });
    }
    throw err;
  }
}

/**
 * parseRelayConfig validates a relay.yaml document (already parsed) and resolves its relative
 * paths against `baseDir`. Unknown keys are errors naming their key path.
 */
export function parseRelayConfig(
  doc: unknown,
  baseDir: string,
  options: { source?: string; locate?: (p: readonly PathSegment[]) => { line: number; col: number } | undefined } = {},
): RelayConfig {
  return wrap(
    () => {
      const root = checkObject(doc, [], ['listen', 'identity', 'policy', 'audit', 'admin', 'limits', 'enforcement', ...GUARD_CONFIG_KEYS], ['listen', 'identity', 'policy', 'audit']);
      const listen = checkString(root.listen, ['listen']);
      parseListenAddress(listen);
      const identity = resolve(baseDir, checkString(root.identity, ['identity']));
      const policy = resolve(baseDir, checkString(root.policy, ['policy']));
      const audit = parseAuditSection(root.audit, baseDir);
      let admin: { listen: string } | undefined;
      if (root.admin !== undefined) {
        const a = checkObject(root.admin, ['admin'], ['listen'], ['listen']);
        const adminListen = checkString(a.listen, ['admin', 'listen']);
        checkAdminListen(adminListen);
        admin = { listen: adminListen };
      }
      const limits = resolveLimitsRaw(root.limits, ['limits']);
      const enforcement = resolveEnforcement(root.enforcement);
      const guard = parseGuardConfig(root, baseDir);
      return { listen, identity, policy, audit, ...(admin ? { admin } : {}), limits, enforcement, ...guard };
    },
    options.source,
    options.locate,
  );
}

/**
 * loadRelayConfig reads relay.yaml. Relative paths in it resolve against the file's directory.
 * Throws {@link RelayConfigError} (`RELAY_ERR_CONFIG`) naming the file, line and key path.
 *
 * @example
 * const config = await loadRelayConfig('/etc/switchboard/relay.yaml');
 * const relay = await startRelay(config);
 */
export async function loadRelayConfig(path: string): Promise<RelayConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RelayConfigError(`config: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let parsed;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      throw new RelayConfigError(`config: ${path}${err.line ? `:${err.line}` : ''}: not valid YAML: ${err.message}`, {
        ...(err.line ? { line: err.line } : {}),
        cause: err,
      });
    }
    throw err;
  }
  if (!isPlainObject(parsed.value)) throw new RelayConfigError(`config: ${path}: must be a mapping of settings`);
  return parseRelayConfig(parsed.value, dirname(resolve(path)), { source: path, locate: parsed.locate });
}
