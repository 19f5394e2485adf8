#!/usr/bin/env node
// The bare chain: switchboard's topology doing nothing. A relay process and a connector process,
// mutual TLS 1.3 on both hops (agent ↔ relay, connector ↔ relay, the same certificates and the
// same link framing as switchboard), one stdio server process per agent session, and in between
// only the splice: an agent WebSocket message becomes one DATA frame on the link and back. No
// JSON parsing, no policy, no pinning, no redaction, no audit, no credit, no resumption.
// It is bench-only (never a relay option): bench/tunnel.mjs runs it as the `bare-chain` target
// and prints switchboard's added latency and throughput as ratios of this one's.
//
// With `inspect` (the `inspect-floor` target) it does, besides, only what any relay that inspects
// and records every call cannot skip: the relay JSON.parses every message both ways, looks the
// tool up in an allow-set, and appends two hash-chained records per call (request with the
// arguments' digest, response with its latency) through @switchboard/audit's trail
// (durability off, as the tunnel bench runs switchboard; records held up to 5 ms and built and
// appended together, as switchboard's relay does); the connector JSON.parses every line the
// server writes before framing it. No strict scanning, credit, resumption, pinning, redaction,
// rate limits, metrics, console or fairness turns. Its in-flight calls/s against the bare chain's is
// the most an inspecting relay in this topology can keep here; switchboard is read against both.
//
// Writes of one event-loop turn are coalesced (one cork per turn per socket or pipe), as in
// switchboard, so the ratios measure inspection and not a write strategy.
//
//   node bench/bare-chain.mjs relay <port> <identity dir> [inspect <audit file>]
//   node bench/bare-chain.mjs connector <wss url> <identity dir> [inspect] <command> [args…]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import tls from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import { AuditTrail, digestArguments } from '@switchboard/audit';
import { coalesce } from '@switchboard/common';
import { AGENT_SUBPROTOCOL, FrameType, HEADER_BYTES, LINK_SUBPROTOCOL, encodeControl, encodeData } from '@switchboard/protocol';

const [role, where, idDir, ...rest] = process.argv.slice(2);
const inspect = rest[0] === 'inspect';
const command = inspect ? rest.slice(1) : rest;
const pem = (f) => readFileSync(join(idDir, f));
const tlsOptions = { key: pem('svid_key.pem'), cert: pem('svid.pem'), ca: pem('bundle.pem'), minVersion: 'TLSv1.3' };
const NEWLINE = Buffer.from('\n');

if (role === 'relay') runRelay(Number(where), inspect ? await AuditTrail.open({ path: command[0], durability: 'off' }) : undefined);
else if (role === 'connector') runConnector(where, command);
else {
  console.error('usage: bare-chain.mjs relay <port> <ids> | connector <url> <ids> <command…>');
  process.exit(2);
}

function runRelay(port, trail) {
  const server = https.createServer({ ...tlsOptions, requestCert: true, rejectUnauthorized: true });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 + HEADER_BYTES });
  let link;
  let linkSocket;
  let nextId = 0;
  const agents = new Map();
  server.on('upgrade', (req, socket, head) => {
    const isLink = req.url === '/v1/link';
    if (!isLink && !req.url.startsWith('/v1/agent/')) return socket.destroy();
    wss.handleUpgrade(req, socket, head, (ws) => (isLink ? onLink(ws, socket) : onAgent(ws, socket)));
  });
  wss.options.handleProtocols = (protocols) => (protocols.has(LINK_SUBPROTOCOL) ? LINK_SUBPROTOCOL : protocols.has(AGENT_SUBPROTOCOL) ? AGENT_SUBPROTOCOL : false);
  const toLink = (frame) => {
    if (link === undefined) return;
    coalesce(linkSocket);
    link.send(frame);
  };
  const onLink = (ws, socket) => {
    link = ws;
    linkSocket = socket;
    ws.on('message', (buf) => {
      const id = buf.readUInt32BE(1);
      const a = agents.get(id);
      if (a === undefined) return;
      if (buf[0] === FrameType.DATA) {
        const payload = buf.subarray(HEADER_BYTES);
        if (trail !== undefined && !recordResponse(trail, a, payload)) return;
        coalesce(a.socket);
        a.ws.send(payload, { binary: false });
      } else if (buf[0] === FrameType.CLOSE) a.ws.close(1000);
    });
    ws.on('close', () => {
      if (link === ws) link = undefined;
      for (const a of agents.values()) a.ws.close(1011);
    });
  };
  const onAgent = (ws, socket) => {
    if (link === undefined) return ws.close(1013, 'no connector');
    const id = ++nextId;
    const san = socket.getPeerCertificate().subjectaltname ?? '';
    const a = { ws, socket, sessionId: `bare/${id}`, agent: san.startsWith('URI:') ? san.slice(4).split(',')[0] : san, pending: new Map() };
    agents.set(id, a);
    toLink(encodeControl(FrameType.OPEN, id, {}));
    ws.on('message', (data) => {
      if (trail !== undefined) {
        const refusal = recordRequest(trail, a, data);
        if (refusal !== undefined) {
          coalesce(socket);
          ws.send(refusal, { binary: false });
          return;
        }
      }
      toLink(encodeData(id, data));
    });
    ws.on('close', () => {
      agents.delete(id);
      toLink(encodeControl(FrameType.CLOSE, id, {}));
    });
  };
  server.listen(port, '127.0.0.1');
}

// ---- inspect: what every inspecting relay must do per call ------------------------------------

const ALLOWED_TOOLS = new Set(['echo']);
const noop = () => undefined;

// Records nothing waits on are held up to 5 ms (at most 256) and appended together, built only
// then — as switchboard's relay does (docs/audit.md), so the floor pays what the relay pays.
const held = [];
let heldTimer;
function record(trail, build) {
  held.push(build);
  if (held.length >= 256) appendHeld(trail);
  else heldTimer ??= setTimeout(appendHeld, 5, trail);
}
function appendHeld(trail) {
  clearTimeout(heldTimer);
  heldTimer = undefined;
  for (const build of held.splice(0)) trail.append(build()).catch(noop);
  trail.writeSoon();
}
const refusal = (id, code, message) => Buffer.from(JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }), 'utf8');

// recordRequest parses one agent message, decides a tools/call by its tool name and records the
// decision; it returns the reply for a message that must not go on (unparseable, denied).
function recordRequest(trail, a, data) {
  let msg;
  try {
    msg = JSON.parse(data.toString('utf8'));
  } catch {
    return refusal(null, -32700, 'parse error');
  }
  if (typeof msg?.method !== 'string' || msg.id === undefined) return undefined;
  const requestId = JSON.stringify(msg.id);
  const call = msg.method === 'tools/call';
  const name = call ? String(msg.params?.name) : null;
  const allow = !call || ALLOWED_TOOLS.has(name);
  const args = call ? msg.params?.arguments ?? null : undefined;
  record(trail, () => ({
    type: 'request',
    sessionId: a.sessionId,
    server: 'echo',
    agent: a.agent,
    direction: 'agent-to-server',
    requestId,
    method: msg.method,
    name,
    decision: allow ? 'allow' : 'deny',
    ruleId: allow ? 'bench' : null,
    reason: allow ? 'allowed by bench' : 'no rule allows it',
    argsDigest: call ? digestArguments(args) : null,
  }));
  if (!allow) return refusal(msg.id, -32601, 'denied');
  a.pending.set(requestId, { method: msg.method, name, t0: performance.now() });
  return undefined;
}

// recordResponse parses one server message and records the answer to a recorded request; false drops it.
function recordResponse(trail, a, payload) {
  let msg;
  try {
    msg = JSON.parse(payload.toString('utf8'));
  } catch {
    return false;
  }
  if (msg === null || typeof msg !== 'object') return false;
  if (msg.method !== undefined || msg.id === undefined) return true;
  const requestId = JSON.stringify(msg.id);
  const o = a.pending.get(requestId);
  if (o === undefined) return false;
  a.pending.delete(requestId);
  const code = msg.error?.code;
  const latencyMs = Math.round((performance.now() - o.t0) * 1000) / 1000;
  record(trail, () => ({
    type: 'response',
    sessionId: a.sessionId,
    server: 'echo',
    agent: a.agent,
    requestId,
    method: o.method,
    name: o.name,
    status: msg.error === undefined ? 'ok' : 'error',
    ...(Number.isSafeInteger(code) ? { errorCode: code } : {}),
    latencyMs,
    bytes: payload.length,
    redactions: {},
  }));
  return true;
}

function runConnector(url, [cmd, ...args]) {
  const ws = new WebSocket(`${url}/v1/link`, LINK_SUBPROTOCOL, {
    secureContext: tls.createSecureContext(tlsOptions),
    // The relay's SVID names a SPIFFE ID (URI SAN), not a host; the CA check still applies.
    checkServerIdentity: () => undefined,
    perMessageDeflate: false,
  });
  let socket;
  ws.on('upgrade', (res) => {
    socket = res.socket;
  });
  const toLink = (frame) => {
    if (socket !== undefined) coalesce(socket);
    ws.send(frame);
  };
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
      coalesce(stdin);
      stdin.write(buf.subarray(HEADER_BYTES));
      stdin.write(NEWLINE);
    } else if (buf[0] === FrameType.OPEN) {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
      children.set(id, child);
      let partial = Buffer.alloc(0);
      child.stdout.on('data', (chunk) => {
        let data = partial.length === 0 ? chunk : Buffer.concat([partial, chunk]);
        let nl = data.indexOf(0x0a);
        while (nl >= 0) {
          if (nl > 0) {
            const line = data.subarray(0, nl);
            if (!inspect || isJsonObject(line)) toLink(encodeData(id, line));
          }
          data = data.subarray(nl + 1);
          nl = data.indexOf(0x0a);
        }
        partial = data;
      });
      child.on('exit', () => {
        if (children.get(id) === child) {
          children.delete(id);
          toLink(encodeControl(FrameType.CLOSE, id, {}));
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

// isJsonObject is the connector's check on a server's line: one JSON object (a JSON-RPC message).
function isJsonObject(line) {
  try {
    const v = JSON.parse(line.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  } catch {
    return false;
  }
}
