import { anchoredDetector, isAlnum, isWord, type Detector, type Span } from './detector.js';

/**
 * Detectors for keys and tokens whose shape is fixed by their issuer. Each finds its anchor with
 * `indexOf` and checks the rest with a sticky, bounded pattern, so the cost on text without the
 * anchor is one substring search.
 */

const PEM_BEGIN = /-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----/y;
const PEM_END = /-----END (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----/y;

/**
 * isPemBody is true for the characters a PEM body can hold, as text or JSON-escaped: base64,
 * whitespace, the `Proc-Type:`/`DEK-Info:` header characters, and `\` (for `\n` escapes).
 */
function isPemBody(c: number): boolean {
  return (
    isAlnum(c) ||
    c === 43 /* + */ ||
    c === 47 /* / */ ||
    c === 61 /* = */ ||
    c === 32 ||
    c === 9 ||
    c === 10 ||
    c === 13 ||
    c === 58 /* : */ ||
    c === 44 /* , */ ||
    c === 45 /* - */ ||
    c === 92 /* \ */
  );
}

/**
 * privateKeyDetector finds PEM private keys: any `-----BEGIN … PRIVATE KEY-----` block (PKCS#8,
 * RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP … KEY BLOCK) through its `-----END … PRIVATE KEY-----`
 * line. A block cut off before its END line is redacted to the end of its body, since most of a
 * key is still a leak.
 */
export const privateKeyDetector: Detector = Object.freeze({
  kind: 'private_key',
  minLength: 40,
  anchors: Object.freeze(['PRIVATE KEY']),
  screen: (text: string) => text.includes('PRIVATE KEY'),
  scan(text: string, out: Span[]): void {
    let i = text.indexOf('-----BEGIN ');
    while (i >= 0) {
      PEM_BEGIN.lastIndex = i;
      const begin = PEM_BEGIN.exec(text);
      if (begin === null) {
        i = text.indexOf('-----BEGIN ', i + 1);
        continue;
      }
      const bodyStart = i + begin[0].length;
      let runEnd = bodyStart;
      while (runEnd < text.length && isPemBody(text.charCodeAt(runEnd))) runEnd++;
      let end = -1;
      let j = text.indexOf('-----END ', bodyStart);
      while (j >= 0 && j < runEnd) {
        PEM_END.lastIndex = j;
        const m = PEM_END.exec(text);
        if (m !== null) {
          end = j + m[0].length;
          break;
        }
        j = text.indexOf('-----END ', j + 1);
      }
      if (end < 0) {
        // Truncated: redact the body, but leave trailing whitespace (and JSON \n escapes) alone.
        end = runEnd;
        while (end > bodyStart) {
          const c = text.charCodeAt(end - 1);
          if (c === 32 || c === 9 || c === 10 || c === 13) end--;
          else if ((c === 110 || c === 114) && text.charCodeAt(end - 2) === 92) end -= 2;
          else break;
        }
      }
      out.push({ start: i, end, kind: 'private_key' });
      i = text.indexOf('-----BEGIN ', end);
    }
  },
});

/** awsAccessKeyDetector finds AWS access key IDs: `AKIA` (long-term) or `ASIA` (temporary) and 16 more. */
export const awsAccessKeyDetector: Detector = anchoredDetector({
  kind: 'aws_access_key',
  anchors: ['AKIA', 'ASIA'],
  pattern: /(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/,
  minLength: 20,
  notAfter: isAlnum,
});

// The label, a separator (`=`, `:`, `=>`, optionally quoted, JSON-escaped quotes too) and exactly
// 40 characters of AWS's secret alphabet. Every part is bounded, so each attempt is constant work.
const AWS_SECRET =
  /(?<![A-Za-z0-9])(?:aws[ _-]?secret[ _-]?(?:access[ _-]?)?key|secret[ _-]?access[ _-]?key)\\?["']?[ \t]{0,8}(?:=>|[:=])[ \t]{0,8}\\?["']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/iy;

// Where a label can start relative to its "ecret": "secret…" (1 before), "awssecret…" (4), "aws_secret…" (5).
const LABEL_STARTS = [1, 4, 5];

function scanAwsSecret(text: string, anchor: string, out: Span[]): void {
  let i = text.indexOf(anchor);
  while (i >= 0) {
    let next = i + 1;
    for (const back of LABEL_STARTS) {
      if (i - back < 0) break;
      AWS_SECRET.lastIndex = i - back;
      const m = AWS_SECRET.exec(text);
      if (m !== null) {
        const end = i - back + m[0].length;
        out.push({ start: end - 40, end, kind: 'aws_secret_key' });
        next = end;
        break;
      }
    }
    i = text.indexOf(anchor, next);
  }
}

/**
 * awsSecretKeyDetector finds AWS secret access keys where they are labelled (`aws_secret_access_key
 * = …`, `AWS_SECRET_ACCESS_KEY=…`, `"SecretAccessKey": "…"`). Only the 40-character value is
 * replaced; the label stays, so a reader knows what was there. An unlabelled 40-character string is
 * not flagged: it is indistinguishable from a hash or an ID. Labels are matched case-insensitively
 * but found through `ecret` / `ECRET`, so a label in odd mixed case (`sEcReT`) is not.
 */
export const awsSecretKeyDetector: Detector = Object.freeze({
  kind: 'aws_secret_key',
  minLength: 55,
  anchors: Object.freeze(['ecret', 'ECRET']),
  screen: (text: string) => text.includes('ecret') || text.includes('ECRET'),
  scan(text: string, out: Span[]): void {
    scanAwsSecret(text, 'ecret', out);
    scanAwsSecret(text, 'ECRET', out);
  },
});

/** githubTokenDetector finds GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and fine-grained `github_pat_`. */
export const githubTokenDetector: Detector = anchoredDetector({
  kind: 'github_token',
  anchors: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_'],
  pattern: /(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])/,
  minLength: 40,
  notAfter: isWord,
});

/** slackTokenDetector finds Slack tokens: `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`, `xoxe-`. */
export const slackTokenDetector: Detector = anchoredDetector({
  kind: 'slack_token',
  anchors: ['xoxb-', 'xoxp-', 'xoxa-', 'xoxr-', 'xoxs-', 'xoxe-'],
  pattern: /xox[abeprs]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])/,
  minLength: 15,
  // A `-` before it makes it part of a longer token: scanning it again would only cost time.
  notAfter: (c) => isAlnum(c) || c === 45,
});

/** slackWebhookDetector finds Slack incoming-webhook and workflow URLs (whoever has one can post). */
export const slackWebhookDetector: Detector = anchoredDetector({
  kind: 'slack_webhook',
  anchors: ['https://hooks.slack.com/'],
  pattern: /https:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/T[A-Z0-9]{6,16}\/[A-Za-z0-9/]{16,200}/,
  minLength: 60,
});

/** stripeKeyDetector finds Stripe secret and restricted keys: `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`. */
export const stripeKeyDetector: Detector = anchoredDetector({
  kind: 'stripe_key',
  anchors: ['sk_live_', 'sk_test_', 'rk_live_', 'rk_test_'],
  pattern: /[sr]k_(?:live|test)_[A-Za-z0-9]{10,247}(?![A-Za-z0-9_])/,
  minLength: 18,
  notAfter: isWord,
});
