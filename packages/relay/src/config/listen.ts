import { RelayConfigError } from '../errors.js';

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

/**
 * checkAdminListen parses `admin.listen` and requires a loopback host, unless the listener
 * requires mutual TLS (`admin.mtls`): only then may it be exposed.
 */
export function checkAdminListen(text: string, mtls = false): ListenAddress {
  const addr = parseListenAddress(text, 'admin.listen');
  if (!mtls && !LOOPBACK.has(addr.host)) {
    throw new RelayConfigError(
      `config: admin.listen: must be a loopback address (127.0.0.1, ::1 or localhost), not ${addr.host}; to expose the admin listener, set admin.mtls (viewers and admins by SPIFFE ID)`,
      { path: 'admin.listen' },
    );
  }
  return addr;
}

