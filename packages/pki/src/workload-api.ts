import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PkiError } from './errors.js';
import type { Identity } from './identity-files.js';
import { SpiffeId } from './spiffe-id.js';
import { TrustBundle } from './trust-bundle.js';
import { X509Svid } from './x509-svid.js';

/** WORKLOAD_API_SOCKET_ENV is where a workload finds its Workload API endpoint (SPIFFE Workload Endpoint §4). */
export const WORKLOAD_API_SOCKET_ENV = 'SPIFFE_ENDPOINT_SOCKET';
/** WORKLOAD_API_HEADER is the metadata every Workload API call carries, so a server can refuse calls a browser or proxy was tricked into making. */
export const WORKLOAD_API_HEADER = Object.freeze({ name: 'workload.spiffe.io', value: 'true' });
/** WORKLOAD_API_PROTO is the path of the `.proto` this package speaks (the X.509 part of the SPIFFE Workload API). */
export const WORKLOAD_API_PROTO = fileURLToPath(new URL('../proto/workload.proto', import.meta.url));

const DEFAULT_FIRST_TIMEOUT_MS = 10_000;
const MIN_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/** WireX509Svid is an `X509SVID` message as the proto loader decodes it. */
export interface WireX509Svid {
  spiffeId: string;
  x509Svid: Buffer;
  x509SvidKey: Buffer;
  bundle: Buffer;
  hint?: string;
}

/** WireX509SvidResponse is an `X509SVIDResponse` message as the proto loader decodes it. */
export interface WireX509SvidResponse {
  svids: WireX509Svid[];
  crl?: Buffer[];
  federatedBundles?: Record<string, Buffer>;
}

let definition: grpc.GrpcObject | undefined;

/** workloadApiDefinition loads `workload.proto` once: the service definition for a client and, in tests, a server. */
export function workloadApiDefinition(): grpc.GrpcObject {
  definition ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(WORKLOAD_API_PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true }),
  );
  return definition;
}

/**
 * parseWorkloadEndpoint turns a Workload API address into the gRPC target for it. Accepted, as the
 * SPIFFE Workload Endpoint spec and SPIRE write them: `unix:///path`, `unix:/path`, or an absolute
 * path; `tcp://ip:port` for a Workload API served on TCP (loopback only makes sense). Throws
 * `PKI_ERR_WORKLOAD_API_ENDPOINT` with the rule broken.
 */
export function parseWorkloadEndpoint(address: string): string {
  const bad = (rule: string): never => {
    throw new PkiError('PKI_ERR_WORKLOAD_API_ENDPOINT', `workload api: endpoint ${JSON.stringify(address)} ${rule}`);
  };
  if (address === '') bad('is empty; set it (or SPIFFE_ENDPOINT_SOCKET) to unix:///path/to/agent.sock');
  if (isAbsolute(address)) return `unix:${address}`;
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    return bad('is not a URI; write unix:///path/to/agent.sock or tcp://127.0.0.1:port');
  }
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') bad('must not have a query, fragment or user info');
  if (u.protocol === 'unix:') {
    if (u.host !== '') bad('must not name a host (unix:///path has three slashes)');
    if (!u.pathname.startsWith('/') || u.pathname === '/') bad('must give the absolute path of the socket');
    return `unix:${decodeURIComponent(u.pathname)}`;
  }
  if (u.protocol === 'tcp:') {
    if (u.pathname !== '' && u.pathname !== '/') bad('must not have a path after tcp://ip:port');
    if (u.port === '') bad('needs a port');
    if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/i.test(u.hostname)) bad('must name an IP address, not a host name (SPIFFE Workload Endpoint §4)');
    return `${u.hostname}:${u.port}`;
  }
  return bad(`has scheme ${u.protocol.replace(/:$/, '')}; use unix:// or tcp://`);
}

/**
 * identityFromWorkloadApi reads one `X509SVID` message: the DER chain (leaf first), the PKCS#8 key
 * and the DER bundle of the SVID's own trust domain. The leaf is checked against the SVID rules
 * and its key, as files are ({@link X509Svid.parse}); the message's `spiffe_id` must be the leaf's.
 */
export function identityFromWorkloadApi(message: WireX509Svid): Identity {
  const certs = splitDer(message.x509Svid, 'x509_svid');
  let keyPem: string;
  try {
    keyPem = createPrivateKey({ key: Buffer.from(message.x509SvidKey), format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  } catch (err) {
    throw new PkiError('PKI_ERR_SVID_MALFORMED', 'workload api: x509_svid_key is not a DER PKCS#8 private key', { cause: err });
  }
  const svid = X509Svid.parse(certs.map((c) => c.toString()).join(''), keyPem);
  if (svid.id.toString() !== message.spiffeId) {
    throw new PkiError('PKI_ERR_SVID_MALFORMED', `workload api: spiffe_id ${JSON.stringify(message.spiffeId)} is not the certificate's ${svid.id.toString()}`);
  }
  const bundle = new TrustBundle({ trustDomain: svid.id.trustDomain, x509Authorities: splitDer(message.bundle, 'bundle') });
  return { svid, bundle };
}

/** encodeForWorkloadApi is the inverse of {@link identityFromWorkloadApi}: an identity as an `X509SVID` message (for a server). */
export function encodeForWorkloadApi(identity: Identity, hint = ''): WireX509Svid {
  return {
    spiffeId: identity.svid.id.toString(),
    x509Svid: Buffer.concat(identity.svid.certificates.map((c) => c.raw)),
    x509SvidKey: identity.svid.privateKey.export({ format: 'der', type: 'pkcs8' }),
    bundle: Buffer.concat(identity.bundle.x509Authorities.map((c) => c.raw)),
    hint,
  };
}

// splitDer reads concatenated DER certificates with the platform's X.509 parser: each parse takes
// the first certificate, and its `raw` says how many bytes it was.
function splitDer(der: Buffer | Uint8Array, field: string): X509Certificate[] {
  const buf = Buffer.from(der);
  if (buf.length === 0) throw new PkiError('PKI_ERR_SVID_MALFORMED', `workload api: ${field} is empty`);
  const out: X509Certificate[] = [];
  let offset = 0;
  while (offset < buf.length) {
    if (out.length >= 16) throw new PkiError('PKI_ERR_SVID_MALFORMED', `workload api: ${field} holds more than 16 certificates`);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(buf.subarray(offset));
    } catch (err) {
      throw new PkiError('PKI_ERR_SVID_MALFORMED', `workload api: ${field} certificate ${out.length + 1} is not DER X.509`, { cause: err });
    }
    const n = cert.raw.length;
    if (n === 0 || !cert.raw.equals(buf.subarray(offset, offset + n))) {
      throw new PkiError('PKI_ERR_SVID_MALFORMED', `workload api: ${field} certificate ${out.length + 1} does not re-encode to its bytes`);
    }
    out.push(cert);
    offset += n;
  }
  return out;
}

/** WorkloadApiLogger is the part of a logger the source reports to. */
interface WorkloadApiLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** WorkloadApiOptions configure a {@link WorkloadApiSource}. */
export interface WorkloadApiOptions {
  /** endpoint is the Workload API address (default: `SPIFFE_ENDPOINT_SOCKET`). */
  endpoint?: string;
  /**
   * id picks the SVID when the workload is entitled to several: by SPIFFE ID, or by the
   * operator's `hint`. Unset: the first, which the spec makes the default identity.
   */
  id?: string | SpiffeId;
  hint?: string;
  /** firstTimeoutMs bounds the wait for the first identity (default 10 s). */
  firstTimeoutMs?: number;
  logger?: WorkloadApiLogger;
}

/** WorkloadApiStatus is what a source reports for logs, metrics and readiness. */
export interface WorkloadApiStatus {
  endpoint: string;
  /** connected is true while the FetchX509SVID stream is open. */
  connected: boolean;
  /** updates counts identities received after the first (rotations). */
  updates: number;
  /** streamErrors counts streams that ended in an error and were re-opened. */
  streamErrors: number;
  lastError: string | undefined;
  expiresAt: number;
}

/**
 * WorkloadApiSource holds a workload's X.509-SVID as the SPIFFE Workload API delivers it: it opens
 * the streaming FetchX509SVID call (gRPC over the unix socket, with the `workload.spiffe.io`
 * header), takes the first identity, then hands every later one (a rotation, a new bundle) to its
 * listeners. A stream that ends or fails is re-opened with full-jitter backoff while the identity
 * in hand stays in use; `healthy()` turns false once the stream is down and less than a quarter of
 * the identity's lifetime is left.
 *
 * @example
 * const source = await WorkloadApiSource.connect({ endpoint: 'unix:///run/spire/agent.sock' });
 * source.onUpdate((identity) => swapTls(identity));
 */
export class WorkloadApiSource {
  private readonly client: grpc.Client;
  private readonly options: WorkloadApiOptions;
  private readonly target: string;
  private readonly listeners = new Set<(identity: Identity) => void>();
  private current: Identity | undefined;
  private since = Date.now();
  private call: grpc.ClientReadableStream<WireX509SvidResponse> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failures = 0;
  private readonly state: WorkloadApiStatus;
  private first: { resolve: (i: Identity) => void; reject: (e: Error) => void } | undefined;

  private constructor(target: string, endpoint: string, options: WorkloadApiOptions) {
    this.options = options;
    this.target = target;
    const Service = (workloadApiDefinition().SpiffeWorkloadAPI as grpc.ServiceClientConstructor);
    this.client = new Service(target, grpc.credentials.createInsecure());
    this.state = { endpoint, connected: false, updates: 0, streamErrors: 0, lastError: undefined, expiresAt: 0 };
  }

  /**
   * WorkloadApiSource.connect resolves with the source once the first identity arrived. Rejects
   * with `PKI_ERR_WORKLOAD_API_ENDPOINT` (no or bad address) or `PKI_ERR_WORKLOAD_API_UNAVAILABLE`
   * (no identity within `firstTimeoutMs`: the agent is down, or has no registration entry for
   * this workload; the last gRPC status is in the message).
   */
  static async connect(options: WorkloadApiOptions = {}): Promise<WorkloadApiSource> {
    const endpoint = options.endpoint ?? process.env[WORKLOAD_API_SOCKET_ENV];
    if (endpoint === undefined) {
      throw new PkiError('PKI_ERR_WORKLOAD_API_ENDPOINT', `workload api: no endpoint; pass one or set ${WORKLOAD_API_SOCKET_ENV} (e.g. unix:///run/spire/sockets/agent.sock)`);
    }
    const source = new WorkloadApiSource(parseWorkloadEndpoint(endpoint), endpoint, options);
    const timeoutMs = options.firstTimeoutMs ?? DEFAULT_FIRST_TIMEOUT_MS;
    const first = new Promise<Identity>((resolve, reject) => {
      source.first = { resolve, reject };
    });
    const timer = setTimeout(() => {
      const why = source.state.lastError ?? 'no answer';
      source.first?.reject(new PkiError('PKI_ERR_WORKLOAD_API_UNAVAILABLE', `workload api: no X.509-SVID from ${endpoint} within ${timeoutMs} ms (${why}); is the SPIFFE agent running, and does it have a registration entry for this workload?`, { retryable: true }));
    }, timeoutMs);
    source.open();
    try {
      await first;
      return source;
    } catch (err) {
      source.close();
      throw err;
    } finally {
      clearTimeout(timer);
      source.first = undefined;
    }
  }

  /** identity is the identity in use now. */
  get identity(): Identity {
    return this.current as Identity;
  }

  /** onUpdate calls `listener` with each identity after the first; returns the function that stops it. */
  onUpdate(listener: (identity: Identity) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** status is a copy of the source's counters. */
  status(): WorkloadApiStatus {
    return { ...this.state };
  }

  /** healthy is false when the stream is down and less than a quarter of the identity's lifetime is left. */
  healthy(now: number = Date.now()): boolean {
    if (this.state.connected || this.current === undefined) return this.current !== undefined;
    const to = this.state.expiresAt;
    const from = Math.max(Date.parse(this.current.svid.leaf.validFrom), this.since);
    return to - now > (to - from) / 4;
  }

  /** close ends the stream and the channel. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.client.close();
  }

  private open(): void {
    if (this.closed) return;
    const metadata = new grpc.Metadata();
    metadata.set(WORKLOAD_API_HEADER.name, WORKLOAD_API_HEADER.value);
    const fetch = (this.client as unknown as { FetchX509SVID(req: object, md: grpc.Metadata): grpc.ClientReadableStream<WireX509SvidResponse> }).FetchX509SVID;
    const call = fetch.call(this.client, {}, metadata);
    this.call = call;
    let ended = false;
    call.on('metadata', () => {
      this.state.connected = true;
    });
    call.on('data', (response: WireX509SvidResponse) => {
      this.state.connected = true;
      this.failures = 0;
      this.accept(response);
    });
    const retry = (why: string) => {
      if (ended) return;
      ended = true;
      this.state.connected = false;
      if (this.closed) return;
      this.state.streamErrors++;
      this.state.lastError = why;
      this.failures++;
      const delay = MIN_RETRY_MS / 2 + Math.random() * Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** (this.failures - 1));
      this.options.logger?.warn({ endpoint: this.state.endpoint, err: why, retryInMs: Math.round(delay) }, 'workload api stream ended; re-opening');
      this.timer = setTimeout(() => this.open(), delay);
      this.timer.unref();
    };
    call.on('error', (err: grpc.ServiceError) => retry(`${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    call.on('end', () => retry('the server ended the stream'));
  }

  private accept(response: WireX509SvidResponse): void {
    let next: Identity;
    try {
      next = this.pick(response);
    } catch (err) {
      // A bad message keeps the identity in hand; before the first, it is what connect reports.
      this.state.lastError = (err as Error).message;
      this.options.logger?.warn({ err: this.state.lastError }, 'workload api sent an identity we cannot use; keeping the current one');
      if (this.current === undefined) this.first?.reject(err as Error);
      return;
    }
    if (this.current !== undefined && !next.svid.id.equals(this.current.svid.id)) {
      this.state.lastError = `rotation to another SPIFFE ID (${next.svid.id.toString()})`;
      this.options.logger?.warn({ current: this.current.svid.id.toString(), found: next.svid.id.toString() }, 'workload api rotated to another SPIFFE ID; keeping the current identity (restart to change identity)');
      return;
    }
    const same = this.current !== undefined && this.current.svid.leaf.fingerprint256 === next.svid.leaf.fingerprint256 && this.current.bundle.toPem() === next.bundle.toPem();
    if (same) return;
    const isFirst = this.current === undefined;
    this.current = next;
    this.since = Date.now();
    this.state.expiresAt = Date.parse(next.svid.leaf.validTo);
    if (isFirst) {
      this.options.logger?.info({ endpoint: this.state.endpoint, id: next.svid.id.toString(), expiresAt: next.svid.expiresAt.toISOString() }, 'identity from the workload api');
      this.first?.resolve(next);
      return;
    }
    this.state.updates++;
    this.options.logger?.info({ id: next.svid.id.toString(), serial: next.svid.leaf.serialNumber, expiresAt: next.svid.expiresAt.toISOString() }, 'workload api rotated the identity');
    for (const l of this.listeners) l(next);
  }

  private pick(response: WireX509SvidResponse): Identity {
    const svids = response.svids ?? [];
    if (svids.length === 0) throw new PkiError('PKI_ERR_WORKLOAD_API_NO_SVID', 'workload api: the response holds no X.509-SVID');
    const want = this.options.id === undefined ? undefined : this.options.id.toString();
    const hint = this.options.hint;
    const found = svids.find((s) => (want === undefined || s.spiffeId === want) && (hint === undefined || s.hint === hint));
    if (found === undefined) {
      const offered = svids.map((s) => s.spiffeId + (s.hint ? ` (hint ${s.hint})` : '')).join(', ');
      throw new PkiError('PKI_ERR_WORKLOAD_API_NO_SVID', `workload api: no X.509-SVID for ${[want, hint === undefined ? undefined : `hint ${hint}`].filter(Boolean).join(' with ')}; offered: ${offered}`);
    }
    return identityFromWorkloadApi(found);
  }

  /** target is the gRPC target the source dials. */
  get address(): string {
    return this.target;
  }
}
