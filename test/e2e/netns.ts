// Linux network namespaces as test hosts: `private` (MCP server + connector), `relay` and
// `agent`, joined by veth pairs through `relay`, which routes. Needs root, iproute2 and nftables.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

/** netnsUnavailable returns why the namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces need CAP_NET_ADMIN)';
  for (const tool of ['ip', 'nft', 'ss']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (.ci/run installs iproute2 and nftables)`;
    }
  }
  return undefined;
}

function sh(args: string[]): string {
  return execFileSync(args[0] as string, args.slice(1), { encoding: 'utf8', timeout: 10_000 });
}

export interface Topology {
  ns: { private: string; relay: string; agent: string };
  /** addresses: the relay as the private side sees it, as agents see it, and the private host. */
  addr: { relayForPrivate: string; relayForAgent: string; private: string; agent: string };
  exec(ns: string, cmd: string, args: string[], env?: Record<string, string>): ChildProcess;
  run(ns: string, cmd: string, args: string[]): string;
  destroy(): void;
}

/** createTopology builds the three namespaces; `tag` keeps names unique per run. */
export function createTopology(tag: string): Topology {
  const ns = { private: `sb-${tag}-priv`, relay: `sb-${tag}-relay`, agent: `sb-${tag}-agent` };
  const v = { p: `sbp${tag}`, rp: `sbrp${tag}`, a: `sba${tag}`, ra: `sbra${tag}` };
  const addr = { private: '10.231.1.1', relayForPrivate: '10.231.1.2', agent: '10.231.2.1', relayForAgent: '10.231.2.2' };
  const created: string[] = [];
  const destroy = (): void => {
    for (const n of created) {
      try {
        sh(['ip', 'netns', 'del', n]);
      } catch {
        // already gone
      }
    }
  };
  try {
    for (const n of Object.values(ns)) {
      sh(['ip', 'netns', 'add', n]);
      created.push(n);
      sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
    }
    sh(['ip', 'link', 'add', v.p, 'type', 'veth', 'peer', 'name', v.rp]);
    sh(['ip', 'link', 'set', v.p, 'netns', ns.private]);
    sh(['ip', 'link', 'set', v.rp, 'netns', ns.relay]);
    sh(['ip', 'link', 'add', v.a, 'type', 'veth', 'peer', 'name', v.ra]);
    sh(['ip', 'link', 'set', v.a, 'netns', ns.agent]);
    sh(['ip', 'link', 'set', v.ra, 'netns', ns.relay]);
    sh(['ip', '-n', ns.private, 'addr', 'add', `${addr.private}/24`, 'dev', v.p]);
    sh(['ip', '-n', ns.relay, 'addr', 'add', `${addr.relayForPrivate}/24`, 'dev', v.rp]);
    sh(['ip', '-n', ns.relay, 'addr', 'add', `${addr.relayForAgent}/24`, 'dev', v.ra]);
    sh(['ip', '-n', ns.agent, 'addr', 'add', `${addr.agent}/24`, 'dev', v.a]);
    for (const [n, dev] of [[ns.private, v.p], [ns.relay, v.rp], [ns.relay, v.ra], [ns.agent, v.a]] as const) {
      sh(['ip', '-n', n, 'link', 'set', dev, 'up']);
    }
    // The relay host routes between the two networks, so a path to the private host exists:
    // what stops the agent is the private side, not a missing route.
    sh(['ip', 'netns', 'exec', ns.relay, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    sh(['ip', '-n', ns.private, 'route', 'add', 'default', 'via', addr.relayForPrivate]);
    sh(['ip', '-n', ns.agent, 'route', 'add', 'default', 'via', addr.relayForAgent]);
    // The private host drops every inbound new connection; only loopback and replies to its own
    // outbound connections get in.
    execFileSync('ip', ['netns', 'exec', ns.private, 'nft', '-f', '-'], {
      input: [
        'table inet switchboard_private {',
        '  chain input {',
        '    type filter hook input priority 0; policy drop;',
        '    iif "lo" accept',
        '    ct state established,related accept',
        '  }',
        '}',
      ].join('\n'),
      timeout: 10_000,
    });
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    ns,
    addr,
    exec: (n, cmd, args, env) => spawn('ip', ['netns', 'exec', n, cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
    run: (n, cmd, args) => sh(['ip', 'netns', 'exec', n, cmd, ...args]),
    destroy,
  };
}
