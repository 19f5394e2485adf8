import { mkdtemp, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { execSync } from 'node:child_process';
import WebSocket from 'ws';
import * as m from './zz-t.mjs';
const sdk = await import('@switchboard/agent-sdk');
const dir = await mkdtemp(join(tmpdir(), 'sb-raw-'));
const cmd = await m.serverCommand(dir);
const w = await m.startSwitchboard(dir, cmd);
await new Promise(r => setTimeout(r, 2500));
const q = (xs) => { xs.sort((a,b)=>a-b); return `p50 ${xs[xs.length>>1].toFixed(3)} ms p90 ${xs[Math.floor(xs.length*0.9)].toFixed(3)} n=${xs.length}`; };
async function loop(fn, ms=3000) { for (let i=0;i<300;i++) await fn(); const lat=[]; const end=Date.now()+ms; while(Date.now()<end){const t=process.hrtime.bigint(); await fn(); lat.push(Number(process.hrtime.bigint()-t)/1e6);} return q(lat); }
// 1. agent-sdk Client
const id = await sdk.AgentIdentity.fromDirectory(w.ids.agent);
const c = await sdk.connect({ relay: w.url, server: 'echo', identity: id });
console.log('agent-sdk Client.callTool  ', await loop(() => c.callTool({ name: 'echo', arguments: { message: 'hello' } })));
await c.close();
// 2. raw ws through relay
const ctx = tls.createSecureContext({ key: await readFile(join(w.ids.agent,'svid_key.pem')), cert: await readFile(join(w.ids.agent,'svid.pem')), ca: await readFile(join(w.ids.agent,'bundle.pem')) });
const ws = new WebSocket(`${w.url}/v1/agent/echo`, 'mcp', { secureContext: ctx, checkServerIdentity: () => undefined, perMessageDeflate: false });
await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
ws.on('error', () => {});
let pending = new Map(); let nextId = 1;
ws.on('message', (d) => { const msg = JSON.parse(d.toString()); pending.get(msg.id)?.(msg); pending.delete(msg.id); });
const rpc = (method, params) => new Promise((r) => { const id = nextId++; pending.set(id, r); ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params })); });
await rpc('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } });
ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
console.log('raw ws through the tunnel  ', await loop(() => rpc('tools/call', { name: 'echo', arguments: { message: 'hello' } })));
// 3. a tool the policy denies: the relay answers itself (agent -> relay -> agent, no connector)
console.log('denied call (relay answers)', await loop(() => rpc('tools/call', { name: 'crash', arguments: {} })));
ws.close();
for (const p of [w.connector, w.relay, w.http]) await m.stopProcess(p);
process.exit(0);
