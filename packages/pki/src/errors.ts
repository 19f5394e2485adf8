/**
 * Error codes raised by `@switchboard/pki`. Each names the rule that was broken; the full list with
 * explanations is in `docs/errors.md`.
 */
export type PkiErrorCode =
  // SPIFFE ID / trust domain (SPIFFE-ID spec §2); one code per rule
  | 'PKI_ERR_ID_EMPTY'
  | 'PKI_ERR_ID_SCHEME'
  | 'PKI_ERR_ID_TRUST_DOMAIN_EMPTY'
  | 'PKI_ERR_ID_TRUST_DOMAIN_CHARS'
  | 'PKI_ERR_ID_TRUST_DOMAIN_TOO_LONG'
  | 'PKI_ERR_ID_PORT'
  | 'PKI_ERR_ID_USERINFO'
  | 'PKI_ERR_ID_PERCENT_ENCODED'
  | 'PKI_ERR_ID_PATH_CHARS'
  | 'PKI_ERR_ID_EMPTY_SEGMENT'
  | 'PKI_ERR_ID_DOT_SEGMENT'
  | 'PKI_ERR_ID_TRAILING_SLASH'
  | 'PKI_ERR_ID_QUERY'
  | 'PKI_ERR_ID_FRAGMENT'
  | 'PKI_ERR_ID_TOO_LONG'
  // X.509-SVID (X509-SVID spec §2–§5)
  | 'PKI_ERR_SVID_NO_URI_SAN'
  | 'PKI_ERR_SVID_MULTIPLE_URI_SANS'
  | 'PKI_ERR_SVID_INVALID_URI_SAN'
  | 'PKI_ERR_SVID_LEAF_IS_CA'
  | 'PKI_ERR_SVID_KEY_USAGE_MISSING'
  | 'PKI_ERR_SVID_KEY_USAGE_NOT_CRITICAL'
  | 'PKI_ERR_SVID_KEY_USAGE_NO_DIGITAL_SIGNATURE'
  | 'PKI_ERR_SVID_KEY_USAGE_CERT_SIGN'
  | 'PKI_ERR_SVID_KEY_USAGE_CRL_SIGN'
  | 'PKI_ERR_SVID_EKU_INCOMPLETE'
  | 'PKI_ERR_SVID_ROOT_PATH'
  | 'PKI_ERR_SVID_SIGNING_CERT_NOT_CA'
  | 'PKI_ERR_SVID_SIGNING_CERT_NO_KEY_CERT_SIGN'
  | 'PKI_ERR_SVID_SIGNING_CERT_PATH'
  | 'PKI_ERR_SVID_EXPIRED'
  | 'PKI_ERR_SVID_NOT_YET_VALID'
  | 'PKI_ERR_SVID_CHAIN_INVALID'
  | 'PKI_ERR_SVID_UNTRUSTED'
  | 'PKI_ERR_SVID_MALFORMED'
  | 'PKI_ERR_SVID_UNKNOWN_CRITICAL_EXTENSION'
  | 'PKI_ERR_SVID_TTL_TOO_LONG'
  // Trust bundles
  | 'PKI_ERR_BUNDLE_NOT_FOUND'
  | 'PKI_ERR_BUNDLE_MALFORMED'
  | 'PKI_ERR_BUNDLE_EMPTY'
  // JWT-SVID (JWT-SVID spec)
  | 'PKI_ERR_JWT_MALFORMED'
  | 'PKI_ERR_JWT_ALG_NOT_ALLOWED'
  | 'PKI_ERR_JWT_HEADER_NOT_ALLOWED'
  | 'PKI_ERR_JWT_TYP_INVALID'
  | 'PKI_ERR_JWT_KID_MISSING'
  | 'PKI_ERR_JWT_KEY_NOT_FOUND'
  | 'PKI_ERR_JWT_SIGNATURE_INVALID'
  | 'PKI_ERR_JWT_SUB_INVALID'
  | 'PKI_ERR_JWT_AUD_MISMATCH'
  | 'PKI_ERR_JWT_EXP_MISSING'
  | 'PKI_ERR_JWT_EXPIRED'
  | 'PKI_ERR_JWT_NOT_YET_VALID'
  | 'PKI_ERR_JWT_TTL_TOO_LONG'
  // CSR / enrollment
  | 'PKI_ERR_CSR_MALFORMED'
  | 'PKI_ERR_CSR_SIGNATURE_INVALID'
  | 'PKI_ERR_CSR_KEY_UNSUPPORTED'
  | 'PKI_ERR_TOKEN_INVALID'
  | 'PKI_ERR_TOKEN_EXPIRED'
  | 'PKI_ERR_TOKEN_USED'
  | 'PKI_ERR_TOKEN_ID_MISMATCH'
  | 'PKI_ERR_TOKEN_STORE'
  // SPIFFE Workload API
  | 'PKI_ERR_WORKLOAD_API_ENDPOINT'
  | 'PKI_ERR_WORKLOAD_API_UNAVAILABLE'
  | 'PKI_ERR_WORKLOAD_API_NO_SVID'
  // CA and files
  | 'PKI_ERR_CA_EXISTS'
  | 'PKI_ERR_CA_UNREADABLE'
  | 'PKI_ERR_CA_KEY_MISMATCH'
  | 'PKI_ERR_ID_OUTSIDE_TRUST_DOMAIN'
  | 'PKI_ERR_FILE_EXISTS'
  | 'PKI_ERR_P12_PASSWORD_MISSING';

/**
 * PkiError is the base class of every error `@switchboard/pki` raises on bad input or a failed
 * check. `code` is stable; `message` starts with the module name (`x509svid: …`).
 */
export class PkiError extends Error {
  readonly code: PkiErrorCode;
  /** retryable tells a supervisor whether repeating the same operation can succeed. */
  readonly retryable: boolean;

  constructor(code: PkiErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PkiError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/** isPkiError narrows `err` to a {@link PkiError}, optionally with a given code. */
export function isPkiError(err: unknown, code?: PkiErrorCode): err is PkiError {
  return err instanceof PkiError && (code === undefined || err.code === code);
}
