import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { ClientCapabilities, Implementation } from '@modelcontextprotocol/sdk/types.js';
import type { Identity, SpiffeId } from '@switchboard/pki';
import { AgentIdentity } from './identity.js';
import { RelayClientTransport, type FailoverOptions, type RelayClientTransportOptions } from './relay-client-transport.js';
import { AGENT_SDK_VERSION } from './version.js';

/** ConnectOptions configure {@link connect}. */
export interface ConnectOptions {
  /** relay is the relay's base URL, `wss://host:port`, or several: the first that accepts the session is used. */
  relay: string | URL | readonly (string | URL)[];
  /** failover tunes how several relays are tried ({@link FailoverOptions}). */
  failover?: FailoverOptions;
  /** server is the MCP server's name in the relay policy. */
  server: string;
  /** identity is an identity directory (`svid.pem`, `svid_key.pem`, `bundle.pem`), an {@link Identity} or an {@link AgentIdentity}. */
  identity: string | Identity | AgentIdentity;
  /** relayId is the rule the relay's SPIFFE ID must match: an exact ID or a pattern (default `spiffe://<our trust domain>/relay/*`). */
  relayId?: string | SpiffeId;
  /** clientInfo names this client in `initialize` (default `switchboard-agent-sdk`). */
  clientInfo?: Implementation;
  /** capabilities are the client capabilities announced in `initialize`. */
  capabilities?: ClientCapabilities;
  /** handshakeTimeoutMs bounds TCP + TLS + upgrade (default 10 s). */
  handshakeTimeoutMs?: number;
  /** resumption resumes the session when its relay is lost (default on; {@link RelayClientTransportOptions.resumption}). */
  resumption?: boolean;
}

/**
 * connect opens a session to `server` through the relay and returns a connected MCP SDK `Client`
 * (initialize done). Rejects with the typed errors of {@link RelayClientTransport.start}, or with
 * a `SessionClosedError` when the relay ends the session during initialize.
 *
 * @example
 * const client = await connect({ relay: 'wss://relay.example.org:8443', server: 'crm', identity: './ids/support' });
 * const { tools } = await client.listTools();
 * await client.close();
 */
export async function connect(options: ConnectOptions): Promise<Client> {
  const identity = typeof options.identity === 'string' ? await AgentIdentity.fromDirectory(options.identity) : AgentIdentity.from(options.identity);
  const transport = new RelayClientTransport({
    relay: options.relay,
    server: options.server,
    identity,
    ...(options.relayId !== undefined ? { relayId: options.relayId } : {}),
    ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
    ...(options.failover !== undefined ? { failover: options.failover } : {}),
    ...(options.resumption !== undefined ? { resumption: options.resumption } : {}),
  });
  const client = new Client(options.clientInfo ?? { name: 'switchboard-agent-sdk', version: AGENT_SDK_VERSION }, { capabilities: options.capabilities ?? {} });
  try {
    await client.connect(transport);
  } catch (err) {
    await transport.close().catch(() => undefined);
    throw transport.closeError ?? err;
  }
  return client;
}
