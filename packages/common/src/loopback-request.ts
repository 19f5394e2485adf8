import { isIP } from 'node:net';

/** LOOPBACK_NAMES are the host names a loopback listener answers to. */
const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

/**
 * loopbackRefusal decides whether an HTTP request to a loopback listener on `port` may be served:
 * its `Host` must name a loopback address (or one of `extraHosts`, e.g. the address it is bound
 * to) on that port, and an `Origin`, when sent, must be `http://` one of those. Otherwise a web
 * page could read the listener through DNS rebinding (its own name resolving to 127.0.0.1) or post
 * to it cross-site. Returns why not (`'host'` or `'origin'`), or undefined when allowed.
 *
 * @example
 * loopbackRefusal('127.0.0.1:9464', undefined, 9464);        // undefined: served
 * loopbackRefusal('attacker.example:9464', undefined, 9464); // 'host'
 */
export function loopbackRefusal(host: string | undefined, origin: string | undefined, port: number, extraHosts: readonly string[] = []): 'host' | 'origin' | undefined {
  const names = [...LOOPBACK_NAMES, ...extraHosts.map((h) => (isIP(h) === 6 ? `[${h}]` : h))];
  const hosts = names.map((n) => `${n}:${port}`);
  if (host === undefined || !hosts.includes(host.toLowerCase())) return 'host';
  if (origin !== undefined && !hosts.some((h) => origin.toLowerCase() === `http://${h}`)) return 'origin';
  return undefined;
}
