import { SpiffeId, matchGlob, type IdMatcher, type TrustDomain } from '@switchboard/pki';

/**
 * Which relay a connector or an agent accepts. A relay proves a SPIFFE ID of our trust domain; the
 * question is which one. Accepting any ID of the trust domain would let any workload holding an
 * SVID (an agent, a connector) pose as the relay and read every call, so there is always a rule:
 * the `relayId` the config names (an exact ID, or a pattern under a fixed first path segment), or
 * else {@link DEFAULT_RELAY_ID_PATTERN}.
 */

/** DEFAULT_RELAY_ID_PATTERN is the relay rule when none is configured: `spiffe://<our trust domain>/relay/<one segment>`. */
export const DEFAULT_RELAY_ID_PATTERN = 'spiffe://<trust domain>/relay/*';

/** RELAY_ID_RULE says what a `relayId` may be, for error messages. */
export const RELAY_ID_RULE =
  'must name the relay: an exact SPIFFE ID (spiffe://example.org/relay/main) or a pattern under a fixed first path segment (spiffe://example.org/relay/*)';

/**
 * parseRelayId reads a configured `relayId`: an exact SPIFFE ID with a path, or a glob whose first
 * path segment is literal. A trust domain root or a pattern such as `spiffe://td/*` would accept
 * every workload as the relay, and is refused. Throws `TypeError` naming the rule.
 */
export function parseRelayId(text: string | SpiffeId): IdMatcher {
  const s = typeof text === 'string' ? text : text.toString();
  let matcher: IdMatcher;
  try {
    matcher = s.includes('*') ? matchGlob(s) : exact(SpiffeId.parse(s));
  } catch (err) {
    throw new TypeError(`relayId ${JSON.stringify(s)} ${RELAY_ID_RULE} (${(err as Error).message.replace(/^spiffeid: /, '')})`, { cause: err });
  }
  const first = /^spiffe:\/\/[^/]+\/([^/]*)/.exec(s)?.[1];
  if (first === undefined || first === '' || first.includes('*')) throw new TypeError(`relayId ${JSON.stringify(s)} ${RELAY_ID_RULE}`);
  return matcher;
}

/**
 * relayIdFor is the rule for relays of trust domain `td`: the configured one (which must lie in
 * `td`: our bundle only authenticates relays of our own trust domain), else the default pattern.
 */
export function relayIdFor(rule: IdMatcher | SpiffeId | string | undefined, td: TrustDomain): IdMatcher {
  if (rule === undefined) return matchGlob(`spiffe://${td.name}/relay/*`);
  const configured = typeof rule === 'string' || rule instanceof SpiffeId ? parseRelayId(rule) : rule;
  if (!configured.pattern.startsWith(`spiffe://${td.name}/`)) {
    throw new TypeError(`relayId ${configured.pattern} is outside our trust domain ${td.name}; the bundle can only authenticate relays of our own trust domain`);
  }
  return configured;
}

function exact(id: SpiffeId): IdMatcher {
  if (id.isRoot) throw new TypeError('a trust domain root would accept every workload');
  const want = id.toString();
  return { kind: 'exact', pattern: want, matches: (x) => x.toString() === want };
}
