import { BlockList, isIP } from 'node:net';

/**
 * EgressRule is one allowed destination of a contained server (connector.yaml `egress`):
 * a domain (`api.example.com`, or `*.example.com` for every name under it), an IP address or a
 * CIDR block, each with one port or, without a port, the web ports 443 and 80.
 */
export type EgressRule =
  | { readonly kind: 'domain'; readonly name: string; readonly wildcard: boolean; readonly ports: readonly number[]; readonly text: string }
  | { readonly kind: 'cidr'; readonly family: 'ipv4' | 'ipv6'; readonly network: string; readonly prefix: number; readonly ports: readonly number[]; readonly text: string };

/** WEB_PORTS are what an entry without a port allows. */
export const WEB_PORTS: readonly number[] = Object.freeze([443, 80]);

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * parseEgressRule reads one `egress` entry. Throws TypeError saying what was expected.
 *
 * @example
 * parseEgressRule('*.crm.example.com:8443'); // { kind: 'domain', name: 'crm.example.com', wildcard: true, ports: [8443], … }
 * parseEgressRule('[2001:db8::/32]');       // { kind: 'cidr', family: 'ipv6', prefix: 32, ports: [443, 80], … }
 */
export function parseEgressRule(text: string): EgressRule {
  const t = text.trim();
  if (t.includes('://') || t.includes('/') && !/^[0-9a-fA-F:.[\]]+\/\d+\]?(:\d+)?$/.test(t)) {
    throw new TypeError(`${JSON.stringify(text)} is a URL or a path; write the host and, optionally, :port (api.example.com:443)`);
  }
  let host = t;
  let ports: readonly number[] = WEB_PORTS;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracket) {
    host = bracket[1] as string;
    if (bracket[2] !== undefined) ports = [port(bracket[2], text)];
  } else {
    const colons = t.split(':').length - 1;
    if (colons === 1) {
      const i = t.lastIndexOf(':');
      host = t.slice(0, i);
      ports = [port(t.slice(i + 1), text)];
    } else if (colons > 1) {
      // A bare IPv6 address or block; with a port it must be bracketed.
      host = t;
    }
  }
  const slash = host.indexOf('/');
  const address = slash < 0 ? host : host.slice(0, slash);
  const family = isIP(address);
  if (family !== 0) {
    const max = family === 4 ? 32 : 128;
    const prefix = slash < 0 ? max : Number(host.slice(slash + 1));
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (slash >= 0 && !/^\d{1,3}$/.test(host.slice(slash + 1)))) {
      throw new TypeError(`${JSON.stringify(text)}: the prefix length must be 0–${max}`);
    }
    if (prefix === 0) throw new TypeError(`${JSON.stringify(text)}: a /0 block is every address; write egress: any to opt out knowingly`);
    return Object.freeze({ kind: 'cidr', family: family === 4 ? 'ipv4' : 'ipv6', network: address, prefix, ports: Object.freeze([...ports]), text: t });
  }
  if (slash >= 0) throw new TypeError(`${JSON.stringify(text)} is neither a domain nor an IP address or CIDR block`);
  const wildcard = host.startsWith('*.');
  const name = (wildcard ? host.slice(2) : host).toLowerCase().replace(/\.$/, '');
  const labels = name.split('.');
  if (name.length > 253 || labels.length < 2 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels[labels.length - 1] as string)) {
    throw new TypeError(`${JSON.stringify(text)} is not a domain name (a.b, *.a.b), an IP address, a CIDR block, or one of those with :port`);
  }
  return Object.freeze({ kind: 'domain', name, wildcard, ports: Object.freeze([...ports]), text: t });
}

function port(s: string, text: string): number {
  const n = Number(s);
  if (!/^\d{1,5}$/.test(s) || n < 1 || n > 65535) throw new TypeError(`${JSON.stringify(text)}: the port must be 1–65535`);
  return n;
}

/** EgressDecision is what the egress policy says about one destination. */
export interface EgressDecision {
  allow: boolean;
  /** rule is the entry that allowed it (its text), or why nothing did. */
  reason: string;
}

/**
 * EgressPolicy decides destinations against one server's rules. A name is matched against the
 * domain entries before anything resolves it; the addresses it resolves to are then checked again
 * ({@link EgressPolicy.checkAddress}): an allowed name that resolves to a loopback, link-local,
 * unspecified or multicast address is refused unless an IP entry names that address (DNS
 * rebinding onto the connector's own host).
 */
export class EgressPolicy {
  private readonly rules: readonly EgressRule[];
  private readonly blocks = new Map<number, BlockList>();

  constructor(rules: readonly EgressRule[]) {
    this.rules = rules;
    for (const r of rules) {
      if (r.kind !== 'cidr') continue;
      for (const p of r.ports) {
        let list = this.blocks.get(p);
        if (!list) this.blocks.set(p, (list = new BlockList()));
        list.addSubnet(r.network, r.prefix, r.family);
      }
    }
  }

  /** checkName decides a destination named by host (a domain or an IP literal) and port. */
  checkName(host: string, port: number): EgressDecision {
    const h = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
    if (isIP(h) !== 0) return this.checkAddress(h, port, true);
    for (const r of this.rules) {
      if (r.kind !== 'domain' || !r.ports.includes(port)) continue;
      if (r.wildcard ? h.endsWith(`.${r.name}`) : h === r.name) return { allow: true, reason: `allowed by egress "${r.text}"` };
    }
    return { allow: false, reason: `${h}:${port} is not in egress` };
  }

  /** allowsName: some domain rule names `host` (on any port). */
  allowsName(host: string): boolean {
    const h = host.toLowerCase().replace(/\.$/, '');
    return this.rules.some((r) => r.kind === 'domain' && (r.wildcard ? h.endsWith(`.${r.name}`) : h === r.name));
  }

  /**
   * checkAddress decides an IP address: by an IP/CIDR entry, or (`named`: it came from an allowed
   * name) by the name, unless it is one of this host's own or special addresses.
   */
  checkAddress(address: string, port: number, literal = false): EgressDecision {
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (this.blocks.get(port)?.check(address, family)) {
      const r = this.rules.find((x) => x.ports.includes(port) && inBlock(x, address, family));
      return { allow: true, reason: `allowed by egress "${r?.text ?? address}"` };
    }
    if (literal) return { allow: false, reason: `${address}:${port} is not in egress` };
    if (isSpecialAddress(address)) return { allow: false, reason: `resolves to ${address}, an address of this host or a special one; name it in egress to allow it` };
    return { allow: true, reason: 'resolved from an allowed name' };
  }
}

function inBlock(r: EgressRule, address: string, family: 'ipv4' | 'ipv6'): boolean {
  if (r.kind !== 'cidr') return false;
  const b = new BlockList();
  b.addSubnet(r.network, r.prefix, r.family);
  return b.check(address, family);
}

const SPECIAL = new BlockList();
for (const [net, prefix] of [['0.0.0.0', 8], ['127.0.0.0', 8], ['169.254.0.0', 16], ['224.0.0.0', 4], ['255.255.255.255', 32]] as const) SPECIAL.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fe80::', 10], ['ff00::', 8], ['::ffff:127.0.0.0', 104]] as const) SPECIAL.addSubnet(net, prefix, 'ipv6');

/** isSpecialAddress: loopback, link-local (cloud metadata included), unspecified, multicast, broadcast. */
export function isSpecialAddress(address: string): boolean {
  return SPECIAL.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}
