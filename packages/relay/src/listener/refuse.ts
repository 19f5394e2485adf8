import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { refusalBody } from '@switchboard/protocol';

/**
 * refuseUpgrade answers an upgrade request with a plain HTTP response whose body is a one-line
 * reason, with `Connection: close`, then destroys the socket.
 */
export function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  if (socket.destroyed) return;
  const body = refusalBody(reason);
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'Connection: close\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  socket.end(head + body, () => socket.destroy());
  // A peer that does not read must not keep the socket alive.
  setTimeout(destroyLater, 2000, socket).unref();
}

function destroyLater(socket: Duplex): void {
  if (!socket.destroyed) socket.destroy();
}
