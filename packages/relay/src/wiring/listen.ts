import { once } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/listen.js';
import { RelayError } from '../errors.js';

/** listenOn binds `server` to `addr` and resolves with the bound port; throws `RELAY_ERR_LISTEN` naming `what`. */
export async function listenOn(server: HttpServer | HttpsServer, addr: ListenAddress, what: string): Promise<number> {
  const failed = once(server, 'error');
  server.listen(addr.port, addr.host);
  try {
    await Promise.race([
      once(server, 'listening'),
      failed.then(([err]) => {
        throw err;
      }),
    ]);
  } catch (err) {
    throw new RelayError('RELAY_ERR_LISTEN', `listen: cannot listen on ${what} ${addr.host}:${addr.port}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
      cause: err,
      retryable: true,
    });
  }
  failed.catch(() => undefined);
  return (server.address() as AddressInfo).port;
}

/** hostForUrl writes a listen host as it goes into a URL (a wildcard as localhost, IPv6 bracketed). */
export function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

/** closeServer stops `server` accepting and resolves once its connections are gone. */
export function closeServer(server: HttpServer | HttpsServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
