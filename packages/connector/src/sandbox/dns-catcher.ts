import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';

/** MAX_QUERY_BYTES bounds one DNS query (UDP DNS messages are at most 512 bytes without EDNS; 4096 with). */
const MAX_QUERY_BYTES = 4096;

/**
 * DnsCatcher answers the DNS queries of a contained server, which has no resolver of its own: its
 * /etc/resolv.conf names 127.0.0.1, where socat carries each datagram to this unix socket. Nothing
 * is forwarded upstream (a lookup of `secret.attacker.example` would itself leak the secret): every
 * query is answered REFUSED, and a name that no egress rule allows is reported through `onQuery`
 * (allowed names are reached through the egress proxy, which resolves them itself). The DNS wire
 * format is read and written by `dns-packet`.
 */
export class DnsCatcher {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(onQuery: (name: string) => void) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      let buf = Buffer.alloc(0);
      socket.setTimeout(5000, () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length > MAX_QUERY_BYTES) return socket.destroy();
        let query: dnsPacket.Packet;
        try {
          query = dnsPacket.decode(buf);
        } catch {
          return; // not complete yet (socat writes one datagram per connection), or garbage: the timeout ends it
        }
        for (const q of query.questions ?? []) onQuery(q.name.toLowerCase().replace(/\.$/, ''));
        const answer = dnsPacket.encode({ id: query.id ?? 0, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | REFUSED, questions: query.questions ?? [] });
        socket.end(answer);
      });
    });
  }

  /** listen starts a catcher on `socketPath`. */
  static async listen(socketPath: string, onQuery: (name: string) => void): Promise<DnsCatcher> {
    const c = new DnsCatcher(onQuery);
    await new Promise<void>((resolve, reject) => {
      c.server.once('error', reject);
      c.server.listen(socketPath, () => {
        c.server.off('error', reject);
        resolve();
      });
    });
    return c;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** REFUSED is the DNS RCODE 5 in the flags word. */
const REFUSED = 5;
