export { PkiError, isPkiError } from './errors.js';
export type { PkiErrorCode } from './errors.js';
export { SpiffeId, TrustDomain, tryParseSpiffeId } from './spiffe-id.js';
export { matchExact, matchMemberOf, matchPathPrefix, matchGlob, parseIdMatcher } from './id-matcher.js';
export type { IdMatcher } from './id-matcher.js';
export { TrustBundle, BundleSet, parseCertificatesPem } from './trust-bundle.js';
export type { BundleSource, JwtAuthority } from './trust-bundle.js';
export {
  X509Svid,
  checkLeaf,
  validateX509Svid,
  DEFAULT_SVID_TTL_SECONDS,
  MAX_SVID_TTL_SECONDS,
  SVID_BACKDATE_SECONDS,
  DEFAULT_CLOCK_SKEW_SECONDS,
  MAX_CLOCK_SKEW_SECONDS,
} from './x509-svid.js';
export type { ValidateOptions, ValidatedSvid } from './x509-svid.js';
export { CertificateAuthority, CA_FILES, newP256Key, jwtKeyId } from './ca.js';
export { SvidIssuer, ISSUER_FILES } from './issuer.js';
export type { CaCreateOptions, IssueOptions } from './ca.js';
export { IDENTITY_FILES, writeIdentityFiles, loadIdentityFiles } from './identity-files.js';
export type { Identity } from './identity-files.js';
export {
  issueJwtSvid,
  validateJwtSvid,
  JWT_SVID_ALGORITHMS,
  DEFAULT_JWT_SVID_TTL_SECONDS,
  MAX_JWT_SVID_TTL_SECONDS,
  DEFAULT_JWT_LEEWAY_SECONDS,
  MAX_JWT_LEEWAY_SECONDS,
} from './jwt-svid.js';
export type { JwtSvidIssueOptions, JwtSvidValidateOptions, ValidatedJwtSvid } from './jwt-svid.js';
export { createJwtSvidSigner, loadJwtSvidSigner } from './jwt-svid-signer.js';
export type { JwtSvidSigner, JwtSvidSignerInit, JwtSvidSignOptions } from './jwt-svid-signer.js';
export { createCsr, parseCsr, issueFromCsr } from './csr.js';
export type { ParsedCsr } from './csr.js';
export {
  issueEnrollmentToken,
  enrollmentTokenSubject,
  EnrollmentTokenVerifier,
  MemoryUsedTokenStore,
  FileUsedTokenStore,
  DEFAULT_ENROLLMENT_TTL_SECONDS,
  MAX_ENROLLMENT_TTL_SECONDS,
  ENROLLMENT_TOKEN_TYPE,
  ENROLLMENT_AUDIENCE,
  ENROLLMENT_CLOCK_SKEW_SECONDS,
} from './enrollment-token.js';
export type { UsedTokenStore, EnrollmentTokenOptions, EnrollmentTokenVerifierOptions } from './enrollment-token.js';
export { exportPkcs12 } from './pkcs12.js';
export type { Pkcs12Options } from './pkcs12.js';
export {
  WorkloadApiSource,
  parseWorkloadEndpoint,
  identityFromWorkloadApi,
  encodeForWorkloadApi,
  workloadApiDefinition,
  WORKLOAD_API_SOCKET_ENV,
  WORKLOAD_API_HEADER,
  WORKLOAD_API_PROTO,
} from './workload-api.js';
export type { WorkloadApiOptions, WorkloadApiStatus, WireX509Svid, WireX509SvidResponse } from './workload-api.js';
