import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { RelayConfigError } from '../errors.js';
import { SchemaViolation, YamlSyntaxError, identitySetting, isPlainObject, object, parseYaml, string, stringList, validate, z, type IdentitySetting } from '@switchboard/common/config';
import { parseIdMatcher } from '@switchboard/pki';
import { auditConfig, auditSchema, type RelayAuditConfig } from './audit-config.js';
import { withConfigErrors, type Locate } from './config-errors.js';
import { enforcementConfig, enforcementConfigShape, type JwtSignerOptions, type PinsOptions } from './enforcement-config.js';
import { DEFAULT_ENFORCEMENT, DEFAULT_LIMITS, enforcementSchema, limitsSchema, withDefaults, type EnforcementOptions, type RelayLimits } from './limits.js';
import { checkAdminListen, parseListenAddress } from './listen.js';
import { tracingSchema, type TracingSetting } from '@switchboard/common/tracing';
import { enrollmentConfig, enrollmentSchema, renewalConfig, renewalSchema, type EnrollmentSetting, type RenewalConfig } from './renewal-config.js';

/** RelayConfig is relay.yaml after validation, with every path absolute and every limit set. */
export interface RelayConfig {
  /** listen is `host:port` (`[::]:8443` for IPv6) of the main mTLS listener. */
  listen: string;
  /** identity is the directory holding svid.pem, svid_key.pem and bundle.pem, or `{ workloadApi: { endpoint?, id?, hint? } }`. */
  identity: IdentitySetting;
  /** policy is the path of policy.yaml. */
  policy: string;
  /** audit configures the tamper-evident trail (docs/audit.md). */
  audit: RelayAuditConfig;
  /**
   * admin, when set, is the loopback listener for /healthz, /readyz, /metrics and the console;
   * `tokenFile` holds the token that lets the console approve tool definitions.
   */
  admin?: AdminSetting;
  limits: RelayLimits;
  enforcement: EnforcementOptions;
  /** pins, when set, is the tool pin store (docs/policy.md, "Tool pinning"). */
  pins?: PinsOptions;
  /** jwtSigner, when set, mints JWT-SVIDs for servers with `identityToBackend`. */
  jwtSigner?: JwtSignerOptions;
  /** watchPolicy reloads policy.yaml when the file changes (default true). */
  watchPolicy: boolean;
  /** renewal, when set, renews workload SVIDs on `POST /v1/renew` (docs/identity.md). */
  renewal?: RenewalConfig;
  /** enrollment, when set, starts the enrollment listener (`POST /v1/enroll`). */
  enrollment?: EnrollmentSetting;
  /** tracing, when set, exports OpenTelemetry spans by OTLP (off by default). */
  tracing?: TracingSetting;
}

/**
 * AdminSetting is relay.yaml `admin`: the listener, the console's token (loopback approvals), and
 * `mtls`: serve HTTPS with the relay's SVID, require a client X509-SVID, and let `viewers` read and
 * `admins` read and approve (SPIFFE IDs or patterns, as in policy). Only with `mtls` may `listen` be
 * other than loopback.
 */
export interface AdminSetting {
  listen: string;
  tokenFile?: string;
  mtls?: { viewers: string[]; admins: string[] };
}

const adminSchema = object({
  listen: string(),
  tokenFile: string().optional(),
  mtls: object({ viewers: stringList(0, string({ what: 'a SPIFFE ID or pattern' })).optional(), admins: stringList(0, string({ what: 'a SPIFFE ID or pattern' })).optional() }).optional(),
});

/** relayConfigSchema is relay.yaml: every key, its type and range (docs/operations.md). */
export const relayConfigSchema = object({
  listen: string(),
  // A directory or { workloadApi }: read by identitySetting.
  identity: z.unknown().refine((v) => v !== undefined, 'is required: an identity directory, or { workloadApi: { endpoint } }'),
  policy: string(),
  audit: auditSchema,
  admin: adminSchema.optional(),
  limits: limitsSchema.optional(),
  enforcement: enforcementSchema.optional(),
  renewal: renewalSchema.optional(),
  enrollment: enrollmentSchema.optional(),
  tracing: tracingSchema.optional(),
  ...enforcementConfigShape,
});

/** checkAdminIds requires each `admin.mtls` entry to be a SPIFFE ID or pattern, and someone to be let in. */
export function checkAdminIds(mtls: { viewers?: readonly string[] | undefined; admins?: readonly string[] | undefined }): void {
  for (const key of ['viewers', 'admins'] as const) {
    (mtls[key] ?? []).forEach((pattern, i) => {
      try {
        parseIdMatcher(pattern);
      } catch (err) {
        throw new SchemaViolation(['admin', 'mtls', key, i], `${JSON.stringify(pattern)} is not a SPIFFE ID or pattern: ${(err as Error).message}`);
      }
    });
  }
  if ((mtls.viewers ?? []).length + (mtls.admins ?? []).length === 0) throw new SchemaViolation(['admin', 'mtls'], 'lists no viewers and no admins: nobody could use the admin listener');
}

/**
 * parseRelayConfig validates a relay.yaml document (already parsed) and resolves its relative
 * paths against `baseDir`. Unknown keys are errors naming their key path.
 */
export function parseRelayConfig(
  doc: unknown,
  baseDir: string,
  options: { source?: string; locate?: Locate } = {},
): RelayConfig {
  return withConfigErrors(
    () => {
      const root = validate(relayConfigSchema, doc);
      parseListenAddress(root.listen);
      if (root.enrollment !== undefined) {
        parseListenAddress(root.enrollment.listen, 'enrollment.listen');
        if (root.renewal === undefined) throw new SchemaViolation(['enrollment'], 'needs renewal.issuer: enrolled workloads get their SVID from the same issuer');
      }
      if (root.admin !== undefined) {
        checkAdminListen(root.admin.listen, root.admin.mtls !== undefined);
        if (root.admin.mtls !== undefined) checkAdminIds(root.admin.mtls);
      }
      return {
        listen: root.listen,
        identity: identitySetting(root.identity, ['identity'], baseDir),
        policy: resolve(baseDir, root.policy),
        audit: auditConfig(root.audit, baseDir),
        ...(root.admin
          ? {
              admin: {
                listen: root.admin.listen,
                ...(root.admin.tokenFile !== undefined ? { tokenFile: resolve(baseDir, root.admin.tokenFile) } : {}),
                ...(root.admin.mtls !== undefined ? { mtls: { viewers: root.admin.mtls.viewers ?? [], admins: root.admin.mtls.admins ?? [] } } : {}),
              },
            }
          : {}),
        limits: withDefaults(DEFAULT_LIMITS, root.limits ?? {}),
        enforcement: withDefaults(DEFAULT_ENFORCEMENT, root.enforcement ?? {}),
        ...enforcementConfig(root, baseDir),
        ...(root.renewal ? { renewal: renewalConfig(root.renewal, baseDir) } : {}),
        ...(root.enrollment ? { enrollment: enrollmentConfig(root.enrollment, baseDir) } : {}),
        ...(root.tracing ? { tracing: root.tracing as TracingSetting } : {}),
      };
    },
    options.source,
    options.locate,
  );
}

/**
 * loadRelayConfig reads relay.yaml. Relative paths in it resolve against the file's directory.
 * Throws {@link RelayConfigError} (`RELAY_ERR_CONFIG`) naming the file, line and key path.
 *
 * @example
 * const config = await loadRelayConfig('/etc/switchboard/relay.yaml');
 * const relay = await startRelay(config);
 */
export async function loadRelayConfig(path: string): Promise<RelayConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new RelayConfigError(`config: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  let parsed;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    if (err instanceof YamlSyntaxError) {
      throw new RelayConfigError(`config: ${path}${err.line ? `:${err.line}` : ''}: not valid YAML: ${err.message}`, {
        ...(err.line ? { line: err.line } : {}),
        cause: err,
      });
    }
    throw err;
  }
  if (!isPlainObject(parsed.value)) throw new RelayConfigError(`config: ${path}: must be a mapping of settings`);
  return parseRelayConfig(parsed.value, dirname(resolve(path)), { source: path, locate: parsed.locate });
}
