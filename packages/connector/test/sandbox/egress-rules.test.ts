import { describe, expect, it } from 'vitest';
import { EgressPolicy, isSpecialAddress, parseEgressRule } from '../../src/sandbox/egress-rules.js';

const policy = (...rules: string[]) => new EgressPolicy(rules.map(parseEgressRule));

describe('parseEgressRule', () => {
  it.each([
    ['api.example.com', { kind: 'domain', name: 'api.example.com', wildcard: false, ports: [443, 80] }],
    ['API.Example.COM.', { kind: 'domain', name: 'api.example.com', wildcard: false, ports: [443, 80] }],
    ['*.example.com:8443', { kind: 'domain', name: 'example.com', wildcard: true, ports: [8443] }],
    ['10.0.0.0/8:5432', { kind: 'cidr', family: 'ipv4', network: '10.0.0.0', prefix: 8, ports: [5432] }],
    ['203.0.113.5', { kind: 'cidr', family: 'ipv4', network: '203.0.113.5', prefix: 32, ports: [443, 80] }],
    ['2001:db8::/32', { kind: 'cidr', family: 'ipv6', network: '2001:db8::', prefix: 32, ports: [443, 80] }],
    ['[2001:db8::1]:443', { kind: 'cidr', family: 'ipv6', network: '2001:db8::1', prefix: 128, ports: [443] }],
  ])('%s', (text, expected) => {
    expect(parseEgressRule(text)).toMatchObject(expected);
  });

  it.each([
    ['localhost', 'is not a domain name'],
    ['exa mple.com', 'is not a domain name'],
    ['-bad.example.com', 'is not a domain name'],
    ['example.com:0', 'the port must be 1–65535'],
    ['example.com:65536', 'the port must be 1–65535'],
    ['10.0.0.0/33', 'the prefix length must be 0–32'],
    ['0.0.0.0/0', 'write egress: any'],
    ['[::]/0', 'is neither a domain nor an IP address or CIDR block'],
    ['::/0', 'write egress: any'],
    ['http://example.com', 'is a URL or a path; write the host'],
    ['example.com/path', 'is a URL or a path; write the host'],
    ['*.com.*', 'is not a domain name'],
    ['1.2.3', 'is not a domain name'],
  ])('%s is refused (%s)', (text, message) => {
    expect(() => parseEgressRule(text)).toThrow(message);
  });
});

describe('EgressPolicy', () => {
  it('matches a domain exactly, a wildcard below its name only, on the entry\'s ports', () => {
    const p = policy('api.example.com', '*.crm.example.com:8443');
    expect(p.checkName('api.example.com', 443).allow).toBe(true);
    expect(p.checkName('API.example.com.', 80).allow).toBe(true);
    expect(p.checkName('api.example.com', 8080)).toEqual({ allow: false, reason: 'api.example.com:8080 is not in egress' });
    expect(p.checkName('evil-api.example.com', 443).allow).toBe(false);
    expect(p.checkName('api.example.com.evil.test', 443).allow).toBe(false);
    expect(p.checkName('eu.crm.example.com', 8443)).toEqual({ allow: true, reason: 'allowed by egress "*.crm.example.com:8443"' });
    expect(p.checkName('crm.example.com', 8443).allow).toBe(false);
    expect(p.checkName('eu.crm.example.com', 443).allow).toBe(false);
  });

  it('decides IP literals by IP entries only, IPv4 and IPv6 alike', () => {
    const p = policy('10.0.0.0/8:5432', '[2001:db8::/32]:443', 'api.example.com');
    expect(p.checkName('10.1.2.3', 5432).allow).toBe(true);
    expect(p.checkName('10.1.2.3', 443).allow).toBe(false);
    expect(p.checkName('11.1.2.3', 5432).allow).toBe(false);
    expect(p.checkName('[2001:db8::7]', 443).allow).toBe(true);
    expect(p.checkName('2001:db9::7', 443).allow).toBe(false);
    // An IPv4-mapped IPv6 literal is not a way around an IPv4 rule's absence.
    expect(p.checkName('::ffff:11.1.2.3', 5432).allow).toBe(false);
  });

  it('refuses an allowed name that resolves to this host or a special address, unless an IP entry names it', () => {
    const p = policy('api.example.com', '127.0.0.1:8080');
    expect(p.checkAddress('93.184.216.34', 443)).toEqual({ allow: true, reason: 'resolved from an allowed name' });
    for (const a of ['127.0.0.1', '169.254.169.254', '0.0.0.0', '::1', 'fe80::1', '::ffff:127.0.0.1', '224.0.0.1']) {
      expect(p.checkAddress(a, 443).allow, a).toBe(false);
    }
    expect(p.checkAddress('127.0.0.1', 8080).allow).toBe(true);
    expect(p.allowsName('api.example.com')).toBe(true);
    expect(p.allowsName('other.example.com')).toBe(false);
  });

  it('with no rules refuses everything', () => {
    const p = policy();
    expect(p.checkName('api.example.com', 443).allow).toBe(false);
    expect(p.checkName('10.0.0.1', 443).allow).toBe(false);
  });

  it('knows the special addresses', () => {
    expect(isSpecialAddress('127.0.0.53')).toBe(true);
    expect(isSpecialAddress('8.8.8.8')).toBe(false);
    expect(isSpecialAddress('2606:4700::1111')).toBe(false);
  });
});
