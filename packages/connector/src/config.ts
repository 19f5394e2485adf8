import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { SpiffeId, TrustBundle, X509Svid, type Identity } from '@switchboard/pki';
import { parseDocument } from 'yaml';
import { SERVER_NAME_RULE, isServerName } from '@switchboard/protocol';
import { ConfigError, ConfigUnreadableError } from './errors.js';

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
}

/** HttpServerConfig is a Streamable-HTTP backend; each agent session gets its own MCP session on it. */
export interface HttpServerConfig {
  readonly kind: 'http';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** allowRemote lets `url` point at a non-loopback host; off by default so backends stay private. */
  readonly allowRemote: boolean;
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
  /** identity is an identity directory (`svid.pem`, `svid_key.pem`, `bundle.pem`) or an identity in memory. */
  readonly identity: string | Identity;
  /** relayId is the SPIFFE ID every relay must present; without it any ID of our trust domain is accepted. */
  readonly relayId: SpiffeId | undefined;
  readonly servers: Readonly<Record<string, ServerConfig>>;
  readonly admin: AdminConfig | undefined;
}


const TOP_KEYS = new Set(['relays', 'identity', 'relayId', 'servers', 'admin']);
const STDIO_KEYS = new Set(['command', 'args', 'env', 'cwd']);
const HTTP_KEYS = new Set(['url', 'headers', 'allowRemote']);
const ADMIN_KEYS = new Set(['listen']);

/**
 * loadConnectorConfig reads and validates a `connector.yaml`. Relative paths in it resolve against
 * the file's directory. Throws {@link ConfigUnreadableError} or {@link ConfigError} naming the key.
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
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const first = doc.errors[0] as Error;
    throw new ConfigUnreadableError(`${path} is not valid YAML: ${first.message.split('\n')[0]}`, { cause: first });
  }
  return parseConnectorConfig(doc.toJS({ maxAliasCount: 100 }), { baseDir: dirname(resolve(path)) });
}

/**
 * parseConnectorConfig validates a config object (the parsed YAML, or one built in code) and
 * normalises it. `identity` may also be an {@link Identity} in memory, which is handy in tests.
 * Unknown keys are errors.
 */
export function parseConnectorConfig(input: unknown, options: { baseDir?: string } = {}): ConnectorConfig {
  const baseDir = resolve(options.baseDir ?? process.cwd());
  const top = object(input, '');
  unknownKeys(top, TOP_KEYS, '');

  if (top.relays === undefined) throw new ConfigError('relays', 'is required: a list of relay URLs (wss://host:port)');
  if (!Array.isArray(top.relays) || top.relays.length === 0) throw new ConfigError('relays', 'must be a non-empty list of relay URLs');
  const relays: string[] = [];
  top.relays.forEach((r, i) => {
    const url = relayUrl(r, `relays[${i}]`);
    if (relays.includes(url)) throw new ConfigError(`relays[${i}]`, `duplicate relay ${url}`);
    relays.push(url);
  });

  let identity: string | Identity;
  if (isIdentity(top.identity)) identity = top.identity;
  else identity = resolve(baseDir, nonEmptyString(top.identity, 'identity', 'an identity directory (svid.pem, svid_key.pem, bundle.pem)'));

  let relayId: SpiffeId | undefined;
  if (top.relayId !== undefined) {
    const s = nonEmptyString(top.relayId, 'relayId', 'a SPIFFE ID');
    try {
      relayId = SpiffeId.parse(s);
    } catch (err) {
      throw new ConfigError('relayId', (err as Error).message, { cause: err });
    }
    if (relayId.isRoot) throw new ConfigError('relayId', 'must be a workload ID with a path, not a trust domain root');
  }

  if (top.servers === undefined) throw new ConfigError('servers', 'is required: a map of server name to { command, args } or { url }');
  const serversIn = object(top.servers, 'servers');
  const names = Object.keys(serversIn);
  if (names.length === 0) throw new ConfigError('servers', 'must name at least one server');
  const servers: Record<string, ServerConfig> = {};
  for (const name of names) {
    const path = `servers.${name}`;
    if (!isServerName(name)) {
      throw new ConfigError(path, SERVER_NAME_RULE);
    }
    servers[name] = serverConfig(serversIn[name], path, baseDir);
  }

  let admin: AdminConfig | undefined;
  if (top.admin !== undefined) {
    const a = object(top.admin, 'admin');
    unknownKeys(a, ADMIN_KEYS, 'admin');
    admin = loopbackListen(nonEmptyString(a.listen, 'admin.listen', 'a loopback address such as 127.0.0.1:9465'), 'admin.listen');
  }

  return Object.freeze({ relays: Object.freeze(relays), identity, relayId, servers: Object.freeze(servers), admin });
}

function serverConfig(input: unknown, path: string, baseDir: string): ServerConfig {
  const s = object(input, path);
  const hasCommand = s.command !== undefined;
  const hasUrl = s.url !== undefined;
  if (hasCommand && hasUrl) throw new ConfigError(path, 'has both "command" and "url"; a server is either a stdio process or an HTTP endpoint');
  if (!hasCommand && !hasUrl) throw new ConfigError(path, 'needs "command" (stdio process) or "url" (Streamable HTTP endpoint)');
  if (hasCommand) {
    unknownKeys(s, STDIO_KEYS, path);
    let command = nonEmptyString(s.command, `${path}.command`, 'an executable name or path');
    if ((command.includes('/') || command.includes('\\')) && !isAbsolute(command)) command = resolve(baseDir, command);
    const args = s.args === undefined ? [] : stringList(s.args, `${path}.args`);
    const env = s.env === undefined ? {} : stringMap(s.env, `${path}.env`);
    for (const key of Object.keys(env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new ConfigError(`${path}.env.${key}`, 'is not a valid environment variable name');
    }
    const cwd = s.cwd === undefined ? baseDir : resolve(baseDir, nonEmptyString(s.cwd, `${path}.cwd`, 'a directory'));
    return Object.freeze({ kind: 'stdio', command, args: Object.freeze(args), env: Object.freeze(env), cwd });
  }
  unknownKeys(s, HTTP_KEYS, path);
  const raw = nonEmptyString(s.url, `${path}.url`, 'an http(s) URL');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${path}.url`, `${JSON.stringify(raw)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`${path}.url`, `must be http: or https:, not ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw new ConfigError(`${path}.url`, 'must not carry credentials; put them in "headers"');
  if (url.hash !== '') throw new ConfigError(`${path}.url`, 'must not have a fragment');
  let allowRemote = false;
  if (s.allowRemote !== undefined) {
    if (typeof s.allowRemote !== 'boolean') throw new ConfigError(`${path}.allowRemote`, 'must be true or false');
    allowRemote = s.allowRemote;
  }
  if (!allowRemote && !isLoopbackHost(url.hostname)) {
    throw new ConfigError(
      `${path}.url`,
      `host ${url.hostname} is not a loopback address; backends stay private on this host (set allowRemote: true on this server to override)`,
    );
  }
  const headers = s.headers === undefined ? {} : stringMap(s.headers, `${path}.headers`);
  for (const key of Object.keys(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) throw new ConfigError(`${path}.headers.${key}`, 'is not a valid HTTP header name');
    if (/[\r\n\0]/.test(headers[key] as string)) throw new ConfigError(`${path}.headers.${key}`, 'must not contain CR, LF or NUL');
  }
  return Object.freeze({ kind: 'http', url: url.href, headers: Object.freeze(headers), allowRemote });
}

function relayUrl(input: unknown, path: string): string {
  const raw = nonEmptyString(input, path, 'a relay URL (wss://host:port)');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(path, `${JSON.stringify(raw)} is not a valid URL`);
  }
  if (url.protocol !== 'wss:') throw new ConfigError(path, `must use wss: (mutual TLS), not ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw new ConfigError(path, 'must not carry credentials');
  if (url.search !== '' || url.hash !== '') throw new ConfigError(path, 'must not have a query or fragment');
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

function loopbackListen(value: string, path: string): AdminConfig {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  if (!m) throw new ConfigError(path, `${JSON.stringify(value)} must be host:port, e.g. 127.0.0.1:9465`);
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(path, `port ${port} is out of range`);
  if (!isLoopbackHost(host)) throw new ConfigError(path, `${host} is not a loopback address; the admin listener binds loopback only`);
  return Object.freeze({ host: host === 'localhost' ? '127.0.0.1' : host, port });
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(path, 'must be a mapping');
  return v as Record<string, unknown>;
}

function unknownKeys(o: Record<string, unknown>, known: ReadonlySet<string>, path: string): void {
  for (const key of Object.keys(o)) {
    if (!known.has(key)) {
      throw new ConfigError(path === '' ? key : `${path}.${key}`, `unknown key (known keys: ${[...known].join(', ')})`);
    }
  }
}

function nonEmptyString(v: unknown, path: string, what: string): string {
  if (v === undefined) throw new ConfigError(path, `is required: ${what}`);
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(path, `must be ${what}`);
  return v;
}

function stringList(v: unknown, path: string): string[] {
  if (!Array.isArray(v)) throw new ConfigError(path, 'must be a list of strings');
  return v.map((s, i) => {
    if (typeof s !== 'string') throw new ConfigError(`${path}[${i}]`, 'must be a string (quote numbers)');
    return s;
  });
}

function stringMap(v: unknown, path: string): Record<string, string> {
  const o = object(v, path);
  const out: Record<string, string> = {};
  for (const [k, s] of Object.entries(o)) {
    if (typeof s !== 'string') throw new ConfigError(`${path}.${k}`, 'must be a string (quote numbers and booleans)');
    out[k] = s;
  }
  return out;
}

function isIdentity(v: unknown): v is Identity {
  return typeof v === 'object' && v !== null && (v as Identity).svid instanceof X509Svid && (v as Identity).bundle instanceof TrustBundle;
}
