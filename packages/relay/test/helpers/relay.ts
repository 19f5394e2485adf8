/** A real relay for tests: TLS with certificates minted per test by a throwaway CA, and how to dial it. */
import type { IncomingMessage } from 'node:http';
import type { AuditFs } from '@switchboard/audit';
import { createTestCA, type TestCA, type TestIssueOptions } from '@switchboard/pki/testing';
import WebSocket, { type ClientOptions } from 'ws';
import type { RelayAuditOptions } from '../../src/audit/open.js';
import { MemoryAuditSink } from '../../src/audit/sink.js';
import type { EnforcementOptions, RelayLimits, RelayTiming } from '../../src/config/limits.js';
import type { PolicyDocument } from '../../src/policy/document.js';
import { startRelay, type Relay, type RelayOptions } from '../../src/relay.js';
import { RELAY_ID, STANDARD_POLICY } from './ids.js';
import { within } from './time.js';

/** Creds are what a TLS client presents: its chain and key, and the bundle it trusts. */
export interface Creds {
  cert: string;
  key: string;
  ca: string;
}

/** TestRelay is a running relay with its CA and in-memory audit sink. */
export interface TestRelay {
  relay: Relay;
  ca: TestCA;
  audit: MemoryAuditSink;
  /** creds mints (once per id) a certificate for `id` from the relay's CA. */
  creds(id: string, options?: TestIssueOptions): Promise<Creds>;
  close(): Promise<void>;
}

/** TestRelayOptions shape the relay {@link startTestRelay} starts. */
export interface TestRelayOptions {
  /** ca is the CA to use (default: a fresh one), for certificates a test needs before the relay starts. */
  ca?: TestCA;
  policy?: PolicyDocument | string;
  limits?: Partial<RelayLimits>;
  timing?: Partial<RelayTiming>;
  enforcement?: Partial<EnforcementOptions>;
  /** audit: a trail file (default: an in-memory sink, `t.audit`); `auditSink` replaces the memory sink. */
  audit?: RelayAuditOptions;
  auditSink?: MemoryAuditSink;
  /** auditFs is the trail's file layer (to delay or fail fsync). */
  auditFs?: AuditFs;
  admin?: RelayOptions['admin'];
  /** relayOptions adds startRelay options built from the relay's CA (pins, jwtSigner, watchPolicy). */
  relayOptions?: (ca: TestCA) => Partial<RelayOptions>;
}

/** startTestRelay starts a relay on 127.0.0.1:0 with a fresh CA (STANDARD_POLICY unless told otherwise). */
export async function startTestRelay(options: TestRelayOptions = {}): Promise<TestRelay> {
  const ca = options.ca ?? (await createTestCA({ trustDomain: 'example.org' }));
  const svid = await ca.issue(RELAY_ID);
  const audit = options.auditSink ?? new MemoryAuditSink();
  const relay = await startRelay(
    {
      listen: '127.0.0.1:0',
      identity: { svid, bundle: ca.bundle },
      policy: options.policy ?? STANDARD_POLICY,
      audit: options.audit ?? { sink: audit },
      ...(options.admin ? { admin: options.admin } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.enforcement ? { enforcement: options.enforcement } : {}),
      ...(options.relayOptions ? options.relayOptions(ca) : {}),
    },
    { ...(options.timing ? { timing: options.timing } : {}), ...(options.auditFs ? { auditFs: options.auditFs } : {}) },
  );
  const cache = new Map<string, Promise<Creds>>();
  return {
    relay,
    ca,
    audit,
    creds(id, issueOptions) {
      const key = issueOptions ? `${id}|${JSON.stringify(issueOptions)}` : id;
      let c = cache.get(key);
      if (!c) {
        c = ca.issue(id, issueOptions).then((s) => ({ cert: s.certificatesPem(), key: s.privateKeyPem(), ca: ca.bundlePem }));
        cache.set(key, c);
      }
      return c;
    },
    close: () => relay.close({ drainTimeoutMs: 0 }),
  };
}

/** connect opens a WebSocket to the relay; `creds` undefined means no client certificate. */
export function connect(
  t: TestRelay,
  path: string,
  creds: Partial<Creds> | undefined,
  protocol: string | string[] | undefined,
  extra: ClientOptions = {},
): WebSocket {
  return new WebSocket(`${t.relay.url}${path}`, protocol, {
    ca: t.ca.bundlePem,
    ...(creds?.cert ? { cert: creds.cert, key: creds.key } : {}),
    ...(creds?.ca ? { ca: creds.ca } : {}),
    // The relay's SVID names it by URI SAN only; tests check the chain, not a hostname. (Node wants
    // `undefined` for "ok"; @types/ws types the hook as returning boolean, and `true` would fail.)
    checkServerIdentity: (() => undefined) as unknown as ClientOptions['checkServerIdentity'],
    perMessageDeflate: false,
    ...extra,
  });
}

/** Outcome is how a dial ended. */
export type Outcome = { kind: 'open'; ws: WebSocket } | { kind: 'refused'; status: number; body: string } | { kind: 'error'; message: string };

/** outcome reports how a connection attempt ended: open, refused with an HTTP status, or failed. */
export function outcome(ws: WebSocket, ms = 5000): Promise<Outcome> {
  return within(
    new Promise<Outcome>((resolve) => {
      ws.once('open', () => resolve({ kind: 'open', ws }));
      ws.once('unexpected-response', (req, res: IncomingMessage) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolve({ kind: 'refused', status: res.statusCode ?? 0, body });
          req.destroy();
        });
        res.on('error', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, body }));
      });
      ws.once('error', (err) => resolve({ kind: 'error', message: err.message }));
    }),
    ms,
    'the connection outcome',
  );
}

