/**
 * The one rule for a server name. A name travels in the agent URL path (`/v1/agent/<name>`), in
 * HELLO and OPEN frames, in policy.yaml and connector.yaml, and in logs and metric labels, so it is
 * kept to characters that need no escaping anywhere: 1–64 of `A–Z a–z 0–9 . _ -`, starting with a
 * letter or digit (which also rules out `.` and `..` as path segments).
 */

/** SERVER_NAME_PATTERN is the shape of a server name. */
export const SERVER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** SERVER_NAME_RULE says the rule in words, for error messages. */
export const SERVER_NAME_RULE = 'server names are 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit';

/** isServerName reports whether `v` is a string that follows {@link SERVER_NAME_PATTERN}. */
export function isServerName(v: unknown): boolean {
  return typeof v === 'string' && SERVER_NAME_PATTERN.test(v);
}
