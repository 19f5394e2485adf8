import { resolve } from 'node:path';
import { object, string, validate } from './schema.js';
import type { PathSegment } from './violation.js';

/**
 * WorkloadApiSetting is `identity: { workloadApi: … }` in relay.yaml and connector.yaml: take the
 * X.509-SVID from the SPIFFE Workload API instead of files. Every field is optional.
 */
export interface WorkloadApiSetting {
  /** endpoint is the Workload API address (`unix:///run/spire/sockets/agent.sock`); default `SPIFFE_ENDPOINT_SOCKET`. */
  readonly endpoint?: string;
  /** id picks one SVID by SPIFFE ID when the workload is entitled to several. */
  readonly id?: string;
  /** hint picks one SVID by the operator's hint. */
  readonly hint?: string;
}

/** IdentitySetting is an identity directory (absolute) or a Workload API source. */
export type IdentitySetting = string | { readonly workloadApi: WorkloadApiSetting };

const workloadApiSchema = object(
  {
    workloadApi: object({
      endpoint: string({ what: 'the Workload API socket, e.g. unix:///run/spire/sockets/agent.sock' }).optional(),
      id: string({ what: 'a SPIFFE ID' }).optional(),
      hint: string({ what: 'a hint set on the registration entry' }).optional(),
    }, { required: 'is required: { endpoint, id, hint }, each optional ({} takes SPIFFE_ENDPOINT_SOCKET)' }),
  },
  { expected: 'an identity directory, or { workloadApi: { endpoint } }' },
);

/**
 * identitySetting reads a config's `identity`: a directory (resolved against `baseDir`) holding
 * `svid.pem`, `svid_key.pem` and `bundle.pem`, or `{ workloadApi: { endpoint?, id?, hint? } }`.
 */
export function identitySetting(value: unknown, path: readonly PathSegment[], baseDir: string): IdentitySetting {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const parsed = validate(workloadApiSchema, value, path);
    const w = parsed.workloadApi;
    return Object.freeze({
      workloadApi: Object.freeze({ ...(w.endpoint === undefined ? {} : { endpoint: w.endpoint }), ...(w.id === undefined ? {} : { id: w.id }), ...(w.hint === undefined ? {} : { hint: w.hint }) }),
    });
  }
  return resolve(baseDir, validate(string({ what: 'an identity directory (svid.pem, svid_key.pem, bundle.pem), or { workloadApi: { endpoint } }' }), value, path));
}

/** isWorkloadApiSetting tells the two forms of an {@link IdentitySetting} apart. */
export function isWorkloadApiSetting(value: unknown): value is { readonly workloadApi: WorkloadApiSetting } {
  return typeof value === 'object' && value !== null && typeof (value as { workloadApi?: unknown }).workloadApi === 'object';
}
