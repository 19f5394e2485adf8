/**
 * One server-name rule on every side: a name the relay's policy accepts is one the connector may
 * offer and the agent SDK may ask for, and a name one side refuses, every side refuses.
 */
import { RelayClientTransport } from '@switchboard/agent-sdk';
import { parseConnectorConfig } from '@switchboard/connector';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { SERVER_NAME_RULE, isServerName } from '@switchboard/protocol';
import { compilePolicy } from '@switchboard/relay';
import { beforeAll, describe, expect, it } from 'vitest';

const GOOD = ['crm', 'a', 'A9', 'files-2', 'db_prod', 'eu.crm', '0', 'x'.repeat(64)];
const BAD = ['.', '..', '.hidden', '-x', '_x', 'x'.repeat(65), 'a/b', 'a b', 'é', 'crm%2F', 'a\n'];

let ca: TestCA;
beforeAll(async () => {
  ca = await createTestCA({ trustDomain: 'example.org' });
});

function policyWith(name: string): () => unknown {
  return () =>
    compilePolicy({
      trustDomain: 'example.org',
      servers: { [name]: { connectors: ['spiffe://example.org/connector/a'] } },
      rules: [],
    });
}

function connectorWith(name: string): () => unknown {
  return () => parseConnectorConfig({ relays: ['wss://127.0.0.1:1'], identity: '/nonexistent', servers: { [name]: { command: 'node' } } });
}

async function sdkWith(name: string): Promise<() => unknown> {
  const svid = await ca.issue('spiffe://example.org/agent/a');
  return () => new RelayClientTransport({ relay: 'wss://127.0.0.1:1', server: name, identity: { svid, bundle: ca.bundle } });
}

describe('the server-name rule is the same on every side', () => {
  it.each(GOOD)('%j: accepted by the protocol, the relay policy, connector.yaml and the agent SDK', async (name) => {
    expect(isServerName(name)).toBe(true);
    expect(policyWith(name)).not.toThrow();
    expect(connectorWith(name)).not.toThrow();
    expect(await sdkWith(name)).not.toThrow();
  });

  it.each(BAD)('%j: refused by each of them, with the same rule', async (name) => {
    expect(isServerName(name)).toBe(false);
    expect(policyWith(name)).toThrow(SERVER_NAME_RULE);
    expect(connectorWith(name)).toThrow(SERVER_NAME_RULE);
    expect(await sdkWith(name)).toThrow(SERVER_NAME_RULE);
  });
});
