import { SpiffeId, TrustDomain } from '@switchboard/pki';
import { describe, expect, it } from 'vitest';
import { RELAY_ID_RULE, parseRelayId, relayIdFor } from '../src/index.js';

const TD = TrustDomain.parse('example.org');
const id = (s: string) => SpiffeId.parse(s);

describe('the relay rule', () => {
  it('defaults to spiffe://<td>/relay/<one segment>: never any workload of the trust domain', () => {
    const rule = relayIdFor(undefined, TD);
    expect(rule.pattern).toBe('spiffe://example.org/relay/*');
    expect(rule.matches(id('spiffe://example.org/relay/main'))).toBe(true);
    for (const other of ['spiffe://example.org/agent/a', 'spiffe://example.org/connector/crm', 'spiffe://example.org/relay', 'spiffe://example.org/relay/a/b', 'spiffe://example.org/relays/x', 'spiffe://other.org/relay/main']) {
      expect(rule.matches(id(other)), other).toBe(false);
    }
  });

  it('takes an exact ID or a pattern under a fixed first segment', () => {
    expect(parseRelayId('spiffe://example.org/relay/main')).toMatchObject({ kind: 'exact', pattern: 'spiffe://example.org/relay/main' });
    expect(parseRelayId(id('spiffe://example.org/relay/main')).kind).toBe('exact');
    const eu = parseRelayId('spiffe://example.org/relay/eu-*');
    expect(eu.matches(id('spiffe://example.org/relay/eu-1'))).toBe(true);
    expect(eu.matches(id('spiffe://example.org/relay/us-1'))).toBe(false);
    expect(parseRelayId('spiffe://example.org/infra/**').matches(id('spiffe://example.org/infra/relay/a'))).toBe(true);
  });

  it.each([
    ['a trust domain root', 'spiffe://example.org'],
    ['a wildcard first segment', 'spiffe://example.org/*'],
    ['every path', 'spiffe://example.org/**'],
    ['a partial wildcard first segment', 'spiffe://example.org/re*/main'],
    ['not a SPIFFE ID', 'relay.example.org'],
  ])('refuses %s', (_label, text) => {
    expect(() => parseRelayId(text)).toThrow(TypeError);
    expect(() => parseRelayId(text)).toThrow(RELAY_ID_RULE);
  });

  it('refuses a rule outside our trust domain', () => {
    expect(() => relayIdFor(parseRelayId('spiffe://other.org/relay/main'), TD)).toThrow(
      'relayId spiffe://other.org/relay/main is outside our trust domain example.org; the bundle can only authenticate relays of our own trust domain',
    );
  });
});
