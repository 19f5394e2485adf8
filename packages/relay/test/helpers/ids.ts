/** The identities and the policy most relay tests use. */
import type { PolicyDocument } from '../../src/policy/document.js';

export const TD = 'spiffe://example.org';
export const RELAY_ID = `${TD}/relay/main`;
export const CRM_CONNECTOR = `${TD}/connector/crm`;
export const SUPPORT = `${TD}/agent/support/alice`;
export const SUPPORT_2 = `${TD}/agent/support/bob`;
export const OUTSIDER = `${TD}/agent/outsider`;
export const SAMPLER = `${TD}/agent/sampler`;

/** STANDARD_POLICY is the policy most tests use. */
export const STANDARD_POLICY: PolicyDocument = {
  trustDomain: 'example.org',
  servers: {
    // Pinning off here: the splice tests see exactly the agent's messages at the connector (with
    // tofu, the default, the relay lists a server's tools itself before a call made without a
    // list). Pinning is tested in enforce/enforcement.test.ts and enforce/pinning-default.test.ts.
    crm: { connectors: [CRM_CONNECTOR], pinning: { mode: 'off' } },
    tickets: { connectors: [`${TD}/connector/tickets`] },
  },
  rules: [
    {
      id: 'support-reads-crm',
      agents: [`${TD}/agent/support/*`],
      servers: ['crm'],
      tools: { allow: ['lookup_*', 'get_order', 'echo'], deny: ['*delete*'] },
      // Methods the relay does not know, which the harness answers (custom/*) or holds (slow/*).
      methods: { allow: ['slow/*', 'custom/*'] },
    },
    { id: 'support-tickets', agents: [`${TD}/agent/support/*`], servers: ['tickets'], tools: { allow: ['*'] } },
    { id: 'sampler', agents: [SAMPLER], servers: ['crm'], tools: { allow: ['echo'] }, serverRequests: { sampling: true } },
  ],
};

