import { createHash, generateKeyPairSync } from 'node:crypto';
import { SignJWT, EncryptJWT, generateKeyPair, exportPKCS8 } from 'jose';
import { describe, expect, it } from 'vitest';
import { redactText } from '../../src/redact/redact.js';
import { BUILTIN_DETECTORS, type SecretKind } from '../../src/redact/profiles.js';
import type { Span } from '../../src/redact/detector.js';

function only(text: string): Record<string, number> {
  return { ...redactText(text, 'secrets').counts };
}

function spans(kind: SecretKind, text: string): string[] {
  const out: Span[] = [];
  const d = BUILTIN_DETECTORS[kind];
  if (d.screen(text)) d.scan(text, out);
  return out.map((s) => text.slice(s.start, s.end));
}

/** Deterministic pseudo-random bytes (so a failing case can be reproduced). */
function bytes(n: number, seed: string): Buffer {
  const parts: Buffer[] = [];
  let h = Buffer.from(seed);
  while (parts.length * 32 < n) {
    h = createHash('sha256').update(h).digest();
    parts.push(h);
  }
  return Buffer.concat(parts).subarray(0, n);
}

describe('private keys (PEM)', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sec1 = ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string;
  const pkcs8 = ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const rsaPem = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
  const encrypted = ec.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'hunter2' }) as string;
  const ed = generateKeyPairSync('ed25519');
  const openssh = [
    '-----BEGIN OPENSSH PRIVATE KEY-----',
    bytes(300, 'openssh').toString('base64').replace(/(.{70})/g, '$1\n'),
    '-----END OPENSSH PRIVATE KEY-----',
  ].join('\n');

  it.each([
    ['EC (SEC1)', sec1, 'EC PRIVATE KEY'],
    ['PKCS#8', pkcs8, 'BEGIN PRIVATE KEY'],
    ['RSA (PKCS#1)', rsaPem, 'RSA PRIVATE KEY'],
    ['ENCRYPTED PKCS#8', encrypted, 'ENCRYPTED PRIVATE KEY'],
    ['Ed25519 PKCS#8', ed.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'BEGIN PRIVATE KEY'],
    ['OPENSSH', openssh, 'OPENSSH PRIVATE KEY'],
  ])('%s key in a tool result is replaced whole', (_name, pem, label) => {
    expect(pem).toContain(label);
    const text = `Found credentials in /home/app/.config:\n${pem.trim()}\nDone (1 file).`;
    const r = redactText(text, 'secrets');
    expect(r.text).toBe('Found credentials in /home/app/.config:\n[REDACTED:private_key]\nDone (1 file).');
    expect(r.counts).toEqual({ private_key: 1 });
  });

  it('finds a key written JSON-escaped (\\n) inside raw JSON text', () => {
    const raw = JSON.stringify({ file: 'id_ec', content: sec1 });
    const r = redactText(raw, 'secrets');
    expect(r.counts).toEqual({ private_key: 1 });
    expect(JSON.parse(r.text)).toEqual({ file: 'id_ec', content: '[REDACTED:private_key]\n' });
  });

  it('redacts a truncated key to the end of its body, leaving what follows the body', () => {
    const cut = sec1.slice(0, 120);
    const r = redactText(`${cut}\n\n(output truncated)`, 'secrets');
    expect(r.text).toBe('[REDACTED:private_key]\n\n(output truncated)');
  });

  it('finds two keys separately and leaves a certificate and a public key alone', () => {
    const cert = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ\n-----END CERTIFICATE-----';
    const pub = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const r = redactText(`${cert}\n${sec1}${pub}${pkcs8}`, 'secrets');
    expect(r.counts).toEqual({ private_key: 2 });
    expect(r.text).toContain(cert);
    expect(r.text).toContain(pub.trim());
  });

  it('PGP private key blocks count too', () => {
    const pgp = `-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF${bytes(60, 'pgp').toString('base64')}\n-----END PGP PRIVATE KEY BLOCK-----`;
    expect(spans('private_key', `x ${pgp} y`)).toEqual([pgp]);
  });
});

describe('AWS keys', () => {
  it.each([
    ['env line', 'AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPLE'],
    ['temporary (ASIA)', '"AccessKeyId": "ASIAY34FZKBOKMUTVV7A",', 'ASIAY34FZKBOKMUTVV7A'],
    ['in prose', 'the key AKIAJ2XQ7GZ5N3ABCDEF was rotated', 'AKIAJ2XQ7GZ5N3ABCDEF'],
  ])('access key id: %s', (_n, text, key) => {
    expect(spans('aws_access_key', text)).toEqual([key]);
    expect(redactText(text, 'secrets').text).toBe(text.replace(key, '[REDACTED:aws_access_key]'));
  });

  it.each([
    ['too long', 'AKIAIOSFODNN7EXAMPLEX'],
    ['too short', 'AKIAIOSFODNN7EXAMPL'],
    ['inside a word', 'XAKIAIOSFODNN7EXAMPLE'],
    ['lowercase', 'akiaiosfodnn7example'],
  ])('access key id not matched: %s', (_n, text) => {
    expect(spans('aws_access_key', text)).toEqual([]);
  });

  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  it.each([
    ['credentials file', `[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = ${secret}\n`],
    ['env', `export AWS_SECRET_ACCESS_KEY=${secret}`],
    ['STS JSON', `{"Credentials":{"SecretAccessKey":"${secret}","SessionToken":"x"}}`],
    ['YAML', `secret_access_key: '${secret}'`],
    ['JSON-escaped', JSON.stringify(`{"aws_secret_access_key": "${secret}"}`)],
  ])('secret access key when labelled: %s', (_n, text) => {
    expect(spans('aws_secret_key', text)).toEqual([secret]);
    const r = redactText(text, 'secrets');
    expect(r.text).not.toContain(secret);
    expect(r.text).toContain('[REDACTED:aws_secret_key]');
    expect(r.counts.aws_secret_key).toBe(1);
  });

  it('an unlabelled 40-character string is not a secret key', () => {
    expect(only(`checksum ${secret}`)).toEqual({});
    expect(only('secret_access_key = tooShort')).toEqual({});
  });
});

describe('tokens', () => {
  const gh = `ghp_${'R8sTuVwXyZ0123456789abcdefGHIJKLmnop'}`;
  it.each([
    ['ghp_', gh],
    ['gho_', gh.replace('ghp_', 'gho_')],
    ['ghu_', gh.replace('ghp_', 'ghu_')],
    ['ghs_', gh.replace('ghp_', 'ghs_')],
    ['ghr_', gh.replace('ghp_', 'ghr_')],
    ['github_pat_', 'github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVW'],
  ])('GitHub %s token', (_n, token) => {
    const text = `git remote set-url origin https://x-access-token:${token}@github.com/acme/app.git`;
    expect(spans('github_token', text)).toEqual([token]);
    expect(redactText(text, 'secrets').text).toBe(text.replace(token, '[REDACTED:github_token]'));
  });

  it.each([
    ['bot', 'xoxb-2048123456-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'],
    ['user', 'xoxp-2048123456-2048123457-4096123458-0123456789abcdef0123456789abcdef'],
    ['app', 'xoxa-2-2048123456-1234567890123-abcdef'],
    ['refresh', 'xoxr-2048123456-abcdefghijkl'],
    ['legacy', 'xoxs-2048123456-abcdefghijkl'],
  ])('Slack %s token', (_n, token) => {
    expect(spans('slack_token', `SLACK_TOKEN="${token}"`)).toEqual([token]);
  });

  it('Slack webhook URL', () => {
    const url = 'https://hooks.slack.com/services/T024BE7LD/B01ABCDEF12/abcdefghijklmnopqrstuvwx';
    const r = redactText(`curl -X POST -d @msg.json ${url}`, 'secrets');
    expect(r.text).toBe('curl -X POST -d @msg.json [REDACTED:slack_webhook]');
  });

  it.each(['sk_live_51HqLyjWDarjtT1zdp7dc0aBcDeFgHiJk', 'sk_test_4eC39HqLyjWDarjtT1zdp7dc', 'rk_live_51HqLyjWDarjtT1zdp7dcXyZ'])('Stripe key %s', (key) => {
    const text = `const stripe = new Stripe('${key}');`;
    expect(spans('stripe_key', text)).toEqual([key]);
    expect(redactText(text, 'secrets').counts).toEqual({ stripe_key: 1 });
  });
});

describe('JWTs', async () => {
  const hs = await new SignJWT({ sub: 'user-42', scope: 'orders:read' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode('a-string-secret-at-least-256-bits-long'));
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const es = await new SignJWT({ sub: 'spiffe://example.org/agent/support' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setAudience('crm').sign(privateKey);
  const jwe = await new EncryptJWT({ sub: 'x' }).setProtectedHeader({ alg: 'dir', enc: 'A128GCM' }).encrypt(new Uint8Array(16));
  const unsecured = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.`;

  it.each([
    ['HS256 in an Authorization header', `Authorization: Bearer ${hs}`, hs],
    ['ES256 in JSON', `{"token":"${es}","expires_in":300}`, es],
    ['JWE (five parts)', `cookie session=${jwe}; Path=/`, jwe],
    ['unsecured (alg none)', `t=${unsecured} end`, unsecured],
  ])('%s', (_n, text, token) => {
    expect(spans('jwt', text)).toEqual([token]);
    expect(redactText(text, 'secrets').text).toBe(text.replace(token, '[REDACTED:jwt]'));
  });

  it('a sentence-ending period after a token stays', () => {
    expect(redactText(`Use ${hs}.`, 'secrets').text).toBe('Use [REDACTED:jwt].');
  });

  it('exports PKCS#8 from jose as well (detected as a private key)', async () => {
    const pem = await exportPKCS8(privateKey);
    expect(only(pem)).toEqual({ private_key: 1 });
  });
});

describe('no false positives on ordinary text and numbers', () => {
  const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), bytes(6000, 'image')]).toString('base64');
  const cases: [string, string][] = [
    ['ISO timestamps', 'created 2024-06-01T12:34:56.789Z, updated 2024-06-01 12:34:56+02:00'],
    ['epoch timestamps (s, ms, µs, ns)', 'ts=1718900000 ms=1718900000123 us=1718900000123456 ns=1718900000123456789'],
    ['a column of timestamps', '1718900000123 1718900060123 1718900120123 1718900180123'],
    ['UUIDs', 'id 3f2504e0-4f89-41d3-9a0c-0305e82c3301 and 12345678-1234-4234-9234-123456789012'],
    ['git SHAs', 'commit e83c5163316f89bfbde7d9ab23ca2e25604af290 (4b9422e) merged 4111111111111111a0b1c2d3e4f5a6b7c8d9e0f1'],
    ['phone numbers', 'call +1 415 555 0132, +44 20 7946 0958, (415) 555-0132, +49 30 12345678 or 0049 30 1234 5678'],
    ['order and invoice ids', 'order ORD-2024-000123, #100045873, INV-4111111111111111, PO 2024-4111111111111111, ref_4242424242424242'],
    ['16-digit numbers that fail Luhn', 'account 4111111111111112, 1234567812345678, 4024 0071 4734 5766'],
    ['long numbers in JSON', '{"id":9007199254740993,"ts":1718900000000,"amount_cents":123456789012345,"big":12345678901234567890123}'],
    ['decimals and amounts', 'pi 3.14159265358979323846, total $4,111,111,111,111.11, rate 4111111111111111.5'],
    ['EAN-13 barcodes', 'EAN 4006381333931, 4012345678901, 5901234123457'],
    ['IBAN', 'IBAN DE89 3704 0044 0532 0130 00, GB82 WEST 1234 5698 7654 32'],
    ['IP addresses and versions', '10.0.0.1 192.168.100.200 v1.22.333.4444 2001:db8::ff00:42:8329'],
    ['base64 image', `<img src="data:image/png;base64,${png}">`],
    ['English prose with "sk" words', 'Ask the desk_live_ops team about risk_test_plan before the task_live_window; skeleton sk-8 skates. Keys start with sk_live_ and sk_test_.'],
    ['eyJ inside words', 'heyJude keyJar surveyJSON; base64 of {"a":1} is eyJhIjoxfQ; eyJhIjoxfQ.eyJiIjoyfQ.c2ln has no alg'],
    ['AWS-looking words', 'ASIAN markets, ASIA-PACIFIC, AKIA and ASIA prefixes, AKIAPHOTOS'],
    ['Slack-looking words', 'xoxo-gossip, xoxb- tokens begin so; hooks.slack.com/services is the host'],
    ['GitHub-looking words', 'tokens start with ghp_ and github_pat_; laugh_test_ghp_'],
    ['PEM without private key', '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----'],
    ['private key words', 'Never paste a PRIVATE KEY here; the BEGIN line reads -----BEGIN'],
    ['hex digests', 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'],
    ['US SSN-like and zip', '123-45-6789, 94103-1234'],
    ['tracking numbers', '1Z999AA10123456784, 9400 1000 0000 0000 0000 00'],
  ];
  it.each(cases)('%s', (_name, text) => {
    const r = redactText(text, 'secrets');
    expect(r.counts).toEqual({});
    expect(r.total).toBe(0);
    expect(r.text).toBe(text);
  });
});
