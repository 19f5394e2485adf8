import { readFile } from 'node:fs/promises';

/** ROUTE_WATCH_MS is how often a contained session's unroutable-packet counters are read. */
export const ROUTE_WATCH_MS = 1000;

/**
 * unroutedAttempts reads, for the network namespace process `pid` lives in, how many packets the
 * kernel could not route (IPv4 `OutNoRoutes` in /proc/<pid>/net/snmp, IPv6 `Ip6OutNoRoutes` in
 * snmp6): in a sandbox whose only interface is its loopback, each is a connection or datagram a
 * server tried to send straight out, around the egress proxy. Undefined when unreadable.
 */
export async function unroutedAttempts(pid: number): Promise<number | undefined> {
  try {
    const [snmp, snmp6] = await Promise.all([readFile(`/proc/${pid}/net/snmp`, 'utf8'), readFile(`/proc/${pid}/net/snmp6`, 'utf8')]);
    const ip = snmp.split('\n').filter((l) => l.startsWith('Ip:'));
    const keys = (ip[0] ?? '').trim().split(/\s+/);
    const vals = (ip[1] ?? '').trim().split(/\s+/);
    const v4 = Number(vals[keys.indexOf('OutNoRoutes')] ?? 0);
    const v6 = Number(/^Ip6OutNoRoutes\s+(\d+)/m.exec(snmp6)?.[1] ?? 0);
    return v4 + v6;
  } catch {
    return undefined;
  }
}

/** sandboxChild is the first child of the bwrap process `pid`: the process inside the sandbox's namespaces. */
export async function sandboxChild(pid: number): Promise<number | undefined> {
  try {
    const first = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/)[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * RouteWatch polls a contained session's sandbox for attempts to connect around the egress proxy
 * and calls `onAttempts` with the running count whenever it grows. The destinations of such
 * attempts are not visible (the kernel drops them before any socket is made); their number is.
 */
export class RouteWatch {
  private timer: NodeJS.Timeout | undefined;
  private seen = 0;
  private inner: number | undefined;

  constructor(
    private readonly bwrapPid: number,
    private readonly onAttempts: (total: number) => void,
  ) {
    this.timer = setInterval(() => void this.poll(), ROUTE_WATCH_MS);
    this.timer.unref();
  }

  /** poll reads the counters once (also called at close, before the sandbox goes away). */
  async poll(): Promise<void> {
    this.inner ??= await sandboxChild(this.bwrapPid);
    if (this.inner === undefined) return;
    const n = await unroutedAttempts(this.inner);
    if (n !== undefined && n > this.seen) {
      this.seen = n;
      this.onAttempts(n);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
