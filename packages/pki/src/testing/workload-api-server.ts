import * as grpc from '@grpc/grpc-js';
import type { Identity } from '../identity-files.js';
import { WORKLOAD_API_HEADER, encodeForWorkloadApi, workloadApiDefinition, type WireX509SvidResponse } from '../workload-api.js';

/** TestWorkloadApiServer is a SPIFFE Workload API server for tests (what a SPIRE agent serves). */
export interface TestWorkloadApiServer {
  /** endpoint is the address a client takes (`unix:///…`), as SPIFFE_ENDPOINT_SOCKET holds it. */
  readonly endpoint: string;
  /** streams is how many FetchX509SVID streams are open now. */
  readonly streams: number;
  /** calls counts FetchX509SVID calls, refused ones included. */
  readonly calls: number;
  /** refusedNoHeader counts calls refused for lacking the `workload.spiffe.io` header. */
  readonly refusedNoHeader: number;
  /** rotate sends `identities` to every open stream, and to every stream opened later. */
  rotate(...identities: Identity[]): void;
  /** send writes a raw response to every open stream (malformed content, for tests). */
  send(response: WireX509SvidResponse): void;
  /** dropStreams ends every open stream with UNAVAILABLE (an agent restart, seen from the workload). */
  dropStreams(): void;
  close(): Promise<void>;
}

/**
 * startWorkloadApiServer serves FetchX509SVID on a unix socket from the same `workload.proto`
 * the client uses, the way the SPIFFE Workload API spec says a server behaves: a call without the
 * `workload.spiffe.io: true` header is refused with INVALID_ARGUMENT; with no identity to give it
 * answers PERMISSION_DENIED ("no identity issued"); otherwise it sends the current identities at
 * once and again at each {@link TestWorkloadApiServer.rotate}.
 */
export async function startWorkloadApiServer(socketPath: string, identities: Identity[] = []): Promise<TestWorkloadApiServer> {
  const server = new grpc.Server();
  const open = new Set<grpc.ServerWritableStream<object, WireX509SvidResponse>>();
  let current: WireX509SvidResponse | undefined = identities.length > 0 ? response(identities) : undefined;
  let calls = 0;
  let refusedNoHeader = 0;
  const Service = workloadApiDefinition().SpiffeWorkloadAPI as grpc.ServiceClientConstructor;
  server.addService(Service.service, {
    FetchX509SVID: (call: grpc.ServerWritableStream<object, WireX509SvidResponse>) => {
      calls++;
      if (call.metadata.get(WORKLOAD_API_HEADER.name)[0] !== WORKLOAD_API_HEADER.value) {
        refusedNoHeader++;
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'security header missing from request' });
        return;
      }
      if (current === undefined) {
        call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'no identity issued' });
        return;
      }
      open.add(call);
      call.on('cancelled', () => open.delete(call));
      call.on('close', () => open.delete(call));
      call.write(current);
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  return {
    endpoint: `unix://${socketPath}`,
    get streams() {
      return open.size;
    },
    get calls() {
      return calls;
    },
    get refusedNoHeader() {
      return refusedNoHeader;
    },
    rotate(...next: Identity[]) {
      current = response(next);
      for (const call of open) call.write(current);
    },
    send(raw) {
      for (const call of open) call.write(raw);
    },
    dropStreams() {
      for (const call of [...open]) {
        open.delete(call);
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'agent restarting' });
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const call of open) call.end();
        open.clear();
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}

function response(identities: Identity[]): WireX509SvidResponse {
  return { svids: identities.map((i) => encodeForWorkloadApi(i)), crl: [], federatedBundles: {} };
}
