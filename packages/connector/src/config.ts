import { readFile } from 'node:fs/promises';
import { tracingSchema, type TracingSetting } from '@switchboard/common/tracing';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { TrustBundle, X509Svid, type IdMatcher, type Identity, type SpiffeId } from '@switchboard/pki';
import {
  SchemaViolation,
  YamlSyntaxError,
  boolean,
  formatPath,
  integer,
  identitySetting,
  isPlainObject,
  object,
  parseYaml,
  record,
  string,
  stringList,
  validate,
  z,
  type PathSegment,
  type WorkloadApiSetting,
  type YamlSource,
} from '@switchboard/common/config';
import { SERVER_NAME_RULE, isServerName, parseRelayId } from '@switchboard/protocol';
import { ConfigError, ConfigUnreadableError } from './errors.js';
import { parseEgressRule } from './sandbox/egress-rules.js';
import type { Containment } from './sandbox/sandbox.js';

/** StdioServerConfig is a backend started as one process per agent session, spoken to over stdio. */
export interface StdioServerConfig {
  readonly kind: 'stdio';
  /** command is the executable: a name looked up on PATH, or a path (relative ones resolved against the config file's directory). */
  readonly command: string;
  readonly args: readonly string[];
  /** env is added to the small default environment the MCP SDK passes (HOME, PATH, …); the connector's own environment is not inherited. */
  readonly env: Readonly<Record<string, string>>;
  /** cwd is the process's working directory; defaults to the config file's directory. */
  readonly cwd: string;
  /** containment is where the process may reach (`egress`) and what it may read and write (`filesystem`). */
  readonly containment: Containment;
  /** pool keeps pre-spawned processes ready for new sessions (`pool: { size, idleMs }`); each serves one session only. */
  readonly pool: PoolConfig | undefined;
  /** isolation: `session` (default) is a process per agent session; `shared` one process for all of them. */
  readonly isolation: Isolation;
}

/** PoolConfig is a stdio server's warm pool (docs/performance.md, "Warm pools"). */
export interface PoolConfig {
  /** size is how many started, unused processes the pool holds. */
  readonly size: number;
  /** idleMs: a pool that handed out no process for this long lets its processes go, until the next session (0: never). */
  readonly idleMs: number;
}

/** Isolation is how agent sessions map onto backend sessions (docs/performance.md, "Shared servers"). */
export type Isolation = 'session' | 'shared';

/** DEFAULT_POOL_IDLE_MS is how long an unused warm pool keeps its processes (10 minutes). */
export const DEFAULT_POOL_IDLE_MS = 600_000;

/** HttpServerConfig is a Streamable-HTTP backend; each agent session gets its own MCP session on it. */
export interface HttpServerConfig {
  readonly kind: 'http';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** allowRemote lets `url` point at a non-loopback host; off by default so backends stay private. */
  readonly allowRemote: boolean;
  /** isolation: `session` (default) is an MCP session per agent session; `shared` one MCP session for all of them. */
  readonly isolation: Isolation;
}

/** ServerConfig is one backend MCP server the connector offers to the relay. */
export type ServerConfig = StdioServerConfig | HttpServerConfig;

/** AdminConfig is the optional loopback admin listener (`/healthz`, `/readyz`, `/metrics`). */
export interface AdminConfig {
  readonly host: string;
  readonly port: number;
}

/** ConnectorConfig is a validated, normalised `connector.yaml`. Make one with {@link parseConnectorConfig} or {@link loadConnectorConfig}. */
export interface ConnectorConfig {
  /** relays are the relay base URLs (`wss://host:port[/prefix]`), one link each. */
  readonly relays: readonly string[];
  /**
   * identity is an identity directory (`svid.pem`, `svid_key.pem`, `bundle.pem`), the SPIFFE
   * Workload API (`{ workloadApi: { endpoint?, id?, hint? } }`: SPIRE rotates the SVID, the
   * connector does not renew it), or an identity in memory.
   */
  readonly identity: string | Identity | { readonly workloadApi: WorkloadApiSetting };
  /**
   * relayId is the rule every relay's SPIFFE ID must match: an exact ID or a pattern such as
   * `spiffe://example.org/relay/*`. Unset, it is that default pattern for our trust domain (never
   * "any ID of the trust domain": an agent or another connector must not pass for the relay).
   */
  readonly relayId: IdMatcher | SpiffeId | string | undefined;
  readonly servers: Readonly<Record<string, ServerConfig>>;
  readonly admin: AdminConfig | undefined;
  /**
   * enroll, when set, gets the first identity at start when the identity directory holds none:
   * the token file is exchanged at the relay's enrollment listener (docs/identity.md), then the
   * connector renews by itself. Paths absolute.
   */
  readonly enroll: EnrollConfig | undefined;
  /**
   * resumeGraceMs is how long a backend session outlives the relay link that carried it, waiting
   * for its agent to resume it through another relay (connector.yaml `resume.graceMs`, default
   * 30 s; 0 turns resumption off: a lost link ends its sessions). docs/protocol.md.
   */
  readonly resumeGraceMs: number;
  /** tracing, when set, exports OpenTelemetry spans by OTLP (docs/operations.md, "Tracing"); off otherwise. */
  readonly tracing?: TracingSetting | undefined;
  /** file is the config file it was read from (absolute), when it came from one: hidden from contained servers. */
  readonly file?: string;
}

/** EnrollConfig is connector.yaml's `enroll` section. */
export interface EnrollConfig {
  readonly url: string;
  readonly token: string;
  readonly bundle: string;
}


const topSchema = object({
  relays: z.array(z.unknown(), {
    error: (iss) => (iss.input === undefined ? 'is required: a list of relay URLs (wss://host:port)' : 'must be a non-empty list of relay URLs'),
  }).min(1, 'must be a non-empty list of relay URLs'),
  // A directory, or an Identity in memory (parseConnectorConfig only): checked below.
  identity: z.unknown().optional(),
  relayId: string({ what: 'a SPIFFE ID' }).optional(),
  servers: record(z.unknown(), 'a map of server name to { command, args } or { url }', 'is required: a map of server name to { command, args } or { url }'),
  admin: object({ listen: string({ what: 'a loopback address such as 127.0.0.1:9465' }) }).optional(),
  enroll: object({ url: string({ what: 'the enrollment listener, https://host:port' }), token: string({ what: 'a file holding the enrollment token' }), bundle: string({ what: "the trust domain's bundle.pem" }) }).optional(),
  resume: object({ graceMs: integer(0, 600_000) }).optional(),
  tracing: tracingSchema.optional(),
}, { expected: 'a mapping' });

const stdioShape = {
  command: string({ what: 'an executable name or path' }),
  args: stringList(0, z.string({ error: 'must be a string (quote numbers)' })).optional(),
  env: record(z.string({ error: 'must be a string (quote numbers and booleans)' })).optional(),
  cwd: string({ what: 'a directory' }).optional(),
  // Checked below: `any`, or a list of destinations / a { read, write } mapping.
  egress: z.unknown().optional(),
  filesystem: z.unknown().optional(),
  pool: object({ size: integer(1, 64), idleMs: integer(0, 86_400_000).optional() }).optional(),
  isolation: string({ what: 'session or shared' }).optional(),
};
const filesystemSchema = object({
  read: stringList(0, z.string({ error: 'must be a path' })).optional(),
  write: stringList(0, z.string({ error: 'must be a path' })).optional(),
});
const httpShape = {
  url: string({ what: 'an http(s) URL' }),
  headers: record(z.string({ error: 'must be a string (quote numbers and booleans)' })).optional(),
  allowRemote: boolean().optional(),
  isolation: string({ what: 'session or shared' }).optional(),
};
const stdioSchema = object(stdioShape);
const httpSchema = object(httpShape);
// For a server that names neither `command` nor `url`: a misspelt key is the likelier mistake.
const anyServerSchema = object({ ...stdioShape, ...httpShape, command: stdioShape.command.optional(), url: httpShape.url.optional() });

/**
 * loadConnectorConfig reads and validates a `connector.yaml`. Relative paths in it resolve against
 * the file's directory. Throws {@link ConfigUnreadableError} or {@link ConfigError} naming the key
 * (and its line: `config: connector.yaml:7:5: servers.crm.comand: unknown key …`).
 *
 * @example
 * const config = await loadConnectorConfig('/etc/switchboard/connector.yaml');
 * const connector = await startConnector(config);
 */
export async function loadConnectorConfig(path: string): Promise<ConnectorConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigUnreadableError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let parsed: YamlSource;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      throw new ConfigUnreadableError(`${path}${err.line ? `:${err.line}` : ''} is not valid YAML: ${err.message}`, { cause: err });
    }
    throw err;
  }
  const config = parseConnectorConfig(parsed.value, { baseDir: dirname(resolve(path)), source: path, locate: parsed.locate });
  return Object.freeze({ ...config, file: resolve(path) });
}

/** ParseOptions tune {@link parseConnectorConfig}. */
export interface ParseOptions {
  /** baseDir resolves relative paths (default: the working directory). */
  baseDir?: string;
  /** source names the file in errors. */
  source?: string;
  /** locate finds a key path's line in the file, for errors. */
  locate?: YamlSource['locate'];
}

/**
 * parseConnectorConfig validates a config object (the parsed YAML, or one built in code) and
 * normalises it. `identity` may also be an {@link Identity} in memory, which is handy in tests.
 * Unknown keys are errors.
 */
export function parseConnectorConfig(input: unknown, options: ParseOptions = {}): ConnectorConfig {
  try {
    return parseConfig(input, resolve(options.baseDir ?? process.cwd()));
  } catch (err) {
    if (!(err instanceof SchemaViolation)) throw err;
    const path = err.path.length === 0 ? '' : formatPath(err.path);
    const pos = options.locate?.(err.path);
    const where = options.source === undefined ? undefined : `${options.source}${pos ? `:${pos.line}:${pos.col}` : ''}`;
    throw new ConfigError(path, err.rule, { cause: err, ...(where === undefined ? {} : { where }), ...(pos ? { line: pos.line } : {}) });
  }
}

function fail(path: readonly PathSegment[], rule: string): never {
  throw new SchemaViolation(path, rule);
}

function parseConfig(input: unknown, baseDir: string): ConnectorConfig {
  const top = validate(topSchema, input);
  const relays: string[] = [];
  top.relays.forEach((r, i) => {
    const url = relayUrl(r, ['relays', i]);
    if (relays.includes(url)) fail(['relays', i], `duplicate relay ${url}`);
    relays.push(url);
  });

  const identity: ConnectorConfig['identity'] = isIdentity(top.identity) ? top.identity : identitySetting(top.identity, ['identity'], baseDir);

  let relayId: IdMatcher | undefined;
  if (top.relayId !== undefined) {
    try {
      relayId = parseRelayId(top.relayId);
    } catch (err) {
      fail(['relayId'], (err as Error).message.replace(/^relayId "[^"]*" /, ''));
    }
  }

  const names = Object.keys(top.servers);
  if (names.length === 0) fail(['servers'], 'must name at least one server');
  const servers: Record<string, ServerConfig> = {};
  for (const name of names) {
    if (!isServerName(name)) fail(['servers', name], SERVER_NAME_RULE);
    servers[name] = serverConfig(top.servers[name], ['servers', name], baseDir);
  }

  const admin = top.admin === undefined ? undefined : loopbackListen(top.admin.listen, ['admin', 'listen']);
  let enroll: EnrollConfig | undefined;
  if (top.enroll !== undefined) {
    if (typeof identity !== 'string') fail(['enroll'], 'needs identity to be a directory (the enrolled identity is written there)');
    let u: URL;
    try {
      u = new URL(top.enroll.url);
    } catch {
      fail(['enroll', 'url'], `${JSON.stringify(top.enroll.url)} is not a valid URL`);
    }
    if (u.protocol !== 'https:') fail(['enroll', 'url'], `must be https://, not ${u.protocol}`);
    enroll = Object.freeze({ url: u.href.replace(/\/+$/, ''), token: resolve(baseDir, top.enroll.token), bundle: resolve(baseDir, top.enroll.bundle) });
  }
  const resumeGraceMs = top.resume?.graceMs ?? DEFAULT_RESUME_GRACE_MS;
  return Object.freeze({ relays: Object.freeze(relays), identity, relayId, servers: Object.freeze(servers), admin, enroll, resumeGraceMs, ...(top.tracing ? { tracing: top.tracing as TracingSetting } : {}) });
}

/** DEFAULT_RESUME_GRACE_MS is how long a session whose relay was lost waits to be resumed (connector.yaml `resume.graceMs`). */
export const DEFAULT_RESUME_GRACE_MS = 30_000;

function serverConfig(input: unknown, path: readonly PathSegment[], baseDir: string): ServerConfig {
  if (!isPlainObject(input)) fail(path, 'must be a mapping');
  const hasCommand = input.command !== undefined;
  const hasUrl = input.url !== undefined;
  if (hasCommand && hasUrl) fail(path, 'has both "command" and "url"; a server is either a stdio process or an HTTP endpoint');
  if (!hasCommand && !hasUrl) {
    validate(anyServerSchema, input, path);
    fail(path, 'needs "command" (stdio process) or "url" (Streamable HTTP endpoint)');
  }
  if (hasCommand) {
    const s = validate(stdioSchema, input, path);
    let command = s.command;
    if ((command.includes('/') || command.includes('\\')) && !isAbsolute(command)) command = resolve(baseDir, command);
    const env = s.env ?? {};
    for (const key of Object.keys(env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) fail([...path, 'env', key], 'is not a valid environment variable name');
    }
    const cwd = s.cwd === undefined ? baseDir : resolve(baseDir, s.cwd);
    const containment = Object.freeze({ egress: egressSetting(s.egress, [...path, 'egress']), filesystem: filesystemSetting(s.filesystem, [...path, 'filesystem'], baseDir) });
    const isolation = isolationSetting(s.isolation, [...path, 'isolation']);
    if (s.pool !== undefined && isolation === 'shared') fail([...path, 'pool'], 'is for isolation: session (a shared server is one process, started once); remove pool or isolation: shared');
    const pool = s.pool === undefined ? undefined : Object.freeze({ size: s.pool.size, idleMs: s.pool.idleMs ?? DEFAULT_POOL_IDLE_MS });
    return Object.freeze({ kind: 'stdio', command, args: Object.freeze(s.args ?? []), env: Object.freeze(env), cwd, containment, pool, isolation });
  }
  const s = validate(httpSchema, input, path);
  const at = [...path, 'url'];
  let url: URL;
  try {
    url = new URL(s.url);
  } catch {
    fail(at, `${JSON.stringify(s.url)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(at, `must be http: or https:, not ${url.protocol}`);
  if (url.username !== '' || url.password !== '') fail(at, 'must not carry credentials; put them in "headers"');
  if (url.hash !== '') fail(at, 'must not have a fragment');
  const allowRemote = s.allowRemote ?? false;
  if (!allowRemote && !isLoopbackHost(url.hostname)) {
    fail(at, `host ${url.hostname} is not a loopback address; backends stay private on this host (set allowRemote: true on this server to override)`);
  }
  const headers = s.headers ?? {};
  for (const [key, value] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) fail([...path, 'headers', key], 'is not a valid HTTP header name');
    if (/[\r\n\0]/.test(value)) fail([...path, 'headers', key], 'must not contain CR, LF or NUL');
  }
  return Object.freeze({ kind: 'http', url: url.href, headers: Object.freeze(headers), allowRemote, isolation: isolationSetting(s.isolation, [...path, 'isolation']) });
}

function isolationSetting(input: string | undefined, path: readonly PathSegment[]): Isolation {
  if (input === undefined || input === 'session') return 'session';
  if (input === 'shared') return 'shared';
  fail(path, `must be session (a backend session per agent session, the default) or shared (one for all), not ${JSON.stringify(input)}`);
}

/** egressSetting reads `egress`: absent is no network, `any` the host's, else a list of destinations. */
function egressSetting(input: unknown, path: readonly PathSegment[]): Containment['egress'] {
  if (input === undefined || input === null) return Object.freeze([]);
  if (input === 'any') return 'any';
  if (!Array.isArray(input)) fail(path, 'must be a list of destinations (api.example.com, *.example.com, host:port, 10.0.0.0/8, [2001:db8::/32]:443) or any');
  return Object.freeze(
    input.map((entry, i) => {
      if (typeof entry !== 'string') fail([...path, i], 'must be a string (a domain, IP or CIDR block, optionally with :port)');
      try {
        return parseEgressRule(entry);
      } catch (err) {
        fail([...path, i], (err as Error).message);
      }
    }),
  );
}

/** filesystemSetting reads `filesystem`: absent is nothing beyond the system and the program, `any` the host's files. */
function filesystemSetting(input: unknown, path: readonly PathSegment[], baseDir: string): Containment['filesystem'] {
  if (input === undefined || input === null) return Object.freeze({ read: Object.freeze([]), write: Object.freeze([]) });
  if (input === 'any') return 'any';
  if (!isPlainObject(input)) fail(path, 'must be { read: [paths], write: [paths] } or any');
  const f = validate(filesystemSchema, input, path);
  const paths = (list: readonly string[] | undefined, key: string): readonly string[] =>
    Object.freeze(
      (list ?? []).map((p, i) => {
        const abs = resolve(baseDir, p);
        if (abs === '/') fail([...path, key, i], 'is the whole file system; write filesystem: any to opt out knowingly');
        return abs;
      }),
    );
  return Object.freeze({ read: paths(f.read, 'read'), write: paths(f.write, 'write') });
}

function relayUrl(input: unknown, path: readonly PathSegment[]): string {
  const raw = validate(string({ what: 'a relay URL (wss://host:port)' }), input, path);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail(path, `${JSON.stringify(raw)} is not a valid URL`);
  }
  if (url.protocol !== 'wss:') fail(path, `must use wss: (mutual TLS), not ${url.protocol}`);
  if (url.username !== '' || url.password !== '') fail(path, 'must not carry credentials');
  if (url.search !== '' || url.hash !== '') fail(path, 'must not have a query or fragment');
  return url.href.replace(/\/+$/, '');
}

/**
 * isLoopbackHost reports whether a URL hostname names this host's loopback interface: `localhost`,
 * `127.0.0.0/8` or `::1`.
 */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1';
  return false;
}

function loopbackListen(value: string, path: readonly PathSegment[]): AdminConfig {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  if (!m) fail(path, `${JSON.stringify(value)} must be host:port, e.g. 127.0.0.1:9465`);
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  if (port > 65535) fail(path, `port ${port} is out of range`);
  if (!isLoopbackHost(host)) fail(path, `${host} is not a loopback address; the admin listener binds loopback only`);
  return Object.freeze({ host: host === 'localhost' ? '127.0.0.1' : host, port });
}

function isIdentity(v: unknown): v is Identity {
  return typeof v === 'object' && v !== null && (v as Identity).svid instanceof X509Svid && (v as Identity).bundle instanceof TrustBundle;
}
