#!/usr/bin/env node
// The bare chain: switchboard's topology doing nothing. A relay process and a connector process,
// mutual TLS 1.3 on both hops (agent ↔ relay, connector ↔ relay, the same certificates and the
// same link framing as switchboard), one stdio server process per agent session, and in between
// only the splice: an agent WebSocket message becomes one DATA frame on the link and back. No
// JSON parsing, no policy, no pinning, no redaction, no audit, no credit, no resumption.
// It is bench-only (never a relay option): bench/tunnel.mjs runs it as the `bare-chain` target
// and prints switchboard's added latency and throughput as ratios of this one's.
//
//   node bench/bare-chain.mjs relay <port> <identity dir>
//   node bench/bare-chain.mjs connector <wss url> <identity dir> <command> [args…]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import { AGENT_SUBPROTOCOL, FrameType, HEADER_BYTES, LINK_SUBPROTOCOL, encodeControl, encodeData } from '@switchboard/protocol';

const [role, where, idDir, ...command] = process.argv.slice(2);
const pem = (f) => readFileSync(join(idDir, f));
const tlsOptions = { key: pem('svid_key.pem'), cert: pem('svid.pem'), ca: pem('bundle.pem'), minVersion: 'TLSv1.3' };
const NEWLINE = Buffer.from('\n');

if (role === 'relay') runRelay(Number(where));
else if (role === 'connector') runConnector(where, command);
else {
  console.error('usage: bare-chain.mjs relay <port> <ids> | connector <url> <ids> <command…>');
  process.exit(2);
}

function runRelay(port) {
  const server = https.createServer({ ...tlsOptions, requestCert: true, rejectUnauthorized: true });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 + HEADER_BYTES });
  let link;
  let nextId = 0;
  const agents = new Map();
  server.on('upgrade', (req, socket, head) => {
    const isLink = req.url === '/v1/link';
    if (!isLink && !req.url.startsWith('/v1/agent/')) return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => (isLink ? onLink(ws) : onAgent(ws)));
  });
  wss.options.handleProtocols = (protocols) => (protocols.has(LINK_SUBPROTOCOL) ? LINK_SUBPROTOCOL : protocols.has(AGENT_SUBPROTOCOL) ? AGENT_SUBPROTOCOL : false);
  const onLink = (ws) => {
    link = ws;
    ws.on('message', (buf) => {
      const id = buf.readUInt32BE(1);
      const agent = agents.get(id);
      if (agent === undefined) return;
      if (buf[0] === FrameType.DATA) agent.send(buf.subarray(HEADER_BYTES), { binary: false });
      else if (buf[0] === FrameType.CLOSE) agent.close(1000);
    });
    ws.on('close', () => {
      if (link === ws) link = undefined;
      for (const a of agents.values()) a.close(1011);
    });
  };
  const onAgent = (ws) => {
    if (link === undefined) return ws.close(1013, 'no connector');
    const id = ++nextId;
    agents.set(id, ws);
    link.send(encodeControl(FrameType.OPEN, id, {}));
    ws.on('message', (data) => link?.send(encodeData(id, data)));
    ws.on('close', () => {
      agents.delete(id);
      link?.send(encodeControl(FrameType.CLOSE, id, {}));
    });
  };
  server.listen(port, '127.0.0.1');
}

function runConnector(url, [cmd, ...args]) {
  const ws = new WebSocket(`${url}/v1/link`, LINK_SUBPROTOCOL, {
    secureContext: tls.createSecureContext(tlsOptions),
    // The relay's SVID names a SPIFFE ID (URI SAN), not a host; the CA check still applies.
    checkServerIdentity: () => undefined,
    perMessageDeflate: false,
  });
  const children = new Map();
  ws.on('error', (err) => {
    console.error(`bare connector: ${err.message}`);
    process.exit(1);
  });
  ws.on('close', () => process.exit(0));
  ws.on('message', (buf) => {
    const id = buf.readUInt32BE(1);
    if (buf[0] === FrameType.DATA) {
      const stdin = children.get(id)?.stdin;
      if (stdin === undefined) return;
      stdin.cork();
      stdin.write(buf.subarray(HEADER_BYTES));
      stdin.write(NEWLINE);
      stdin.uncork();
    } else if (buf[0] === FrameType.OPEN) {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
      children.set(id, child);
      let partial = Buffer.alloc(0);
      child.stdout.on('data', (chunk) => {
        let data = partial.length === 0 ? chunk : Buffer.concat([partial, chunk]);
        let nl = data.indexOf(0x0a);
        while (nl >= 0) {
          if (nl > 0) ws.send(encodeData(id, data.subarray(0, nl)));
          data = data.subarray(nl + 1);
          nl = data.indexOf(0x0a);
        }
        partial = data;
      });
      child.on('exit', () => {
        if (children.get(id) === child) {
          children.delete(id);
          ws.send(encodeControl(FrameType.CLOSE, id, {}));
        }
      });
    } else if (buf[0] === FrameType.CLOSE) {
      const child = children.get(id);
      children.delete(id);
      child?.kill('SIGTERM');
    }
  });
  const stop = () => {
    for (const c of children.values()) c.kill('SIGKILL');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
