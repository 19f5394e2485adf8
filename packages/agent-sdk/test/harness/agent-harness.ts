/**
 * A test harness that plays the relay's side of agent sessions: a real TLS 1.3 server that
 * requires client certificates, SPIFFE validation and the subprotocol check at the upgrade, and a
 * `ws` server that either echoes frames or runs an MCP SDK server per session. Not a relay.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { Server as McpServer } from '@modelcontextprotocol/sdk/server/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { validateX509Svid, type BundleSet, type X509Svid } from '@switchboard/pki';
import { createTestCA, type TestCA } from '@switchboard/pki/testing';
import { WebSocketServer, type WebSocket } from 'ws';

export interface AgentHarnessOptions {
  svid: X509Svid;
  bundlePem: string;
  bundles: BundleSet;
  /** refuse answers the upgrade with an HTTP status and a one-line body. */
  refuse?: (req: IncomingMessage) => { status: number; body: string } | undefined;
  /** mode: 'echo' sends every text frame back; 'mcp' runs an MCP server per session. */
  mode?: 'echo' | 'mcp';
}

export interface Upgrade {
  path: string;
  protocol: string | undefined;
  peer: string;
}

export class AgentHarness {
  readonly upgrades: Upgrade[] = [];
  /** resumed tells, per upgrade, whether the TLS session was resumed. */
  readonly resumed: boolean[] = [];
  private readonly intermediates: X509Certificate[] = [];
  readonly sockets: WebSocket[] = [];
  connections = 0;
  private readonly server: Server;
  private readonly wss: WebSocketServer;

  private constructor(opts: AgentHarnessOptions) {
    this.server = createServer({ cert: opts.svid.certificatesPem(), key: opts.svid.privateKeyPem(), ca: opts.bundlePem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('mcp') ? 'mcp' : false) });
    this.server.on('secureConnection', () => this.connections++);
    this.server.on('upgrade', (req, socket, head) => {
      let peer: string;
      const tls = socket as TLSSocket;
      try {
        peer = this.validate(chainOf(tls.getPeerCertificate(true)), opts.bundles);
      } catch {
        socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 10\r\n\r\nforbidden\n');
        return;
      }
      const protocol = req.headers['sec-websocket-protocol'];
      this.upgrades.push({ path: req.url ?? '', protocol, peer });
      this.resumed.push(tls.isSessionReused());
      const refusal = opts.refuse?.(req);
      if (protocol !== 'mcp') return void socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 22\r\n\r\nsubprotocol must be mcp');
      if (refusal) {
        socket.end(`HTTP/1.1 ${refusal.status} Refused\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(refusal.body)}\r\n\r\n${refusal.body}`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.sockets.push(ws);
        if (opts.mode === 'mcp') void serveMcp(ws);
        else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
    });
  }

  // A resumed TLS 1.3 session carries only the leaf: offer the intermediates of earlier chains, as the relay does.
  private validate(chain: X509Certificate[], bundles: BundleSet): string {
    try {
      const { id, chain: path } = validateX509Svid(chain, bundles);
      for (const c of path.slice(1, -1)) if (!this.intermediates.some((i) => i.fingerprint256 === c.fingerprint256)) this.intermediates.push(c);
      return id.toString();
    } catch (err) {
      if (this.intermediates.length === 0) throw err;
      return validateX509Svid([...chain, ...this.intermediates], bundles).id.toString();
    }
  }

  static async start(opts: AgentHarnessOptions): Promise<AgentHarness> {
    const h = new AgentHarness(opts);
    await new Promise<void>((r) => h.server.listen(0, '127.0.0.1', r));
    return h;
  }

  get url(): string {
    return `wss://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** WsServerTransport is the server side of one agent session, for the MCP SDK server. */
class WsServerTransport implements Transport {
  onclose?: () => void;
  onerror?: (e: Error) => void;
  onmessage?: (m: JSONRPCMessage) => void;
  constructor(private readonly ws: WebSocket) {}
  async start(): Promise<void> {
    this.ws.on('message', (d) => this.onmessage?.(JSON.parse(d.toString()) as JSONRPCMessage));
    this.ws.on('close', () => this.onclose?.());
  }
  async send(m: JSONRPCMessage): Promise<void> {
    this.ws.send(JSON.stringify(m));
  }
  async close(): Promise<void> {
    this.ws.close();
  }
}

async function serveMcp(ws: WebSocket): Promise<void> {
  const server = new McpServer({ name: 'harness-mcp', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: 'echo', inputSchema: { type: 'object' } }, { name: 'crash', inputSchema: { type: 'object' } }] }));
  server.setRequestHandler(CallToolRequestSchema, async (req) => {
    if (req.params.name === 'crash') {
      setTimeout(() => ws.close(4502, 'backend process exited with code 1'), 5);
      return new Promise(() => undefined);
    }
    return { content: [{ type: 'text', text: String(req.params.arguments?.text ?? '') }] };
  });
  await server.connect(new WsServerTransport(ws));
}

function chainOf(cert: DetailedPeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: DetailedPeerCertificate | undefined = cert;
  while (c?.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}

export const AGENT_ID = 'spiffe://example.org/agent/support';
let shared: TestCA | undefined;

export async function testCA(): Promise<TestCA> {
  shared ??= await createTestCA({ trustDomain: 'example.org' });
  return shared;
}

/** harness starts an agent harness with a relay SVID from the shared CA and returns our identity. */
export async function harness(opts: Partial<AgentHarnessOptions> = {}): Promise<{ ca: TestCA; relay: AgentHarness; identity: { svid: X509Svid; bundle: TestCA['bundle'] } }> {
  const ca = await testCA();
  const relay = await AgentHarness.start({ svid: await ca.issue('spiffe://example.org/relay/test'), bundlePem: ca.bundlePem, bundles: ca.bundles, ...opts });
  return { ca, relay, identity: { svid: await ca.issue(AGENT_ID), bundle: ca.bundle } };
}

export const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
