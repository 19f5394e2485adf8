// Identity figures: X509-SVID issuance/s, peer-SVID validation/s (first sight of a certificate and
// a certificate seen before), and a full TLS 1.3 mutual-TLS handshake on loopback measured in the
// same run. Goal: the SPIFFE checks cost under 10 % of a handshake.
import { once } from 'node:events';
import tls from 'node:tls';
import { createTestCA } from '@switchboard/pki/testing';
import { validateX509Svid } from '@switchboard/pki';

const ms = (ns) => Number(ns) / 1e6;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function benchPki({ quick = false } = {}) {
  const n = quick ? 50 : 300;
  const ca = await createTestCA({ trustDomain: 'example.org' });

  // Issuance: key generation + certificate signing, sequential.
  let t0 = process.hrtime.bigint();
  const svids = [];
  for (let i = 0; i < n; i++) svids.push(await ca.issue(`spiffe://example.org/agent/bench-${i}`));
  const issueMs = ms(process.hrtime.bigint() - t0) / n;

  // Validation, first sight: every certificate is new to the validator's caches.
  t0 = process.hrtime.bigint();
  for (const s of svids) validateX509Svid(s.certificates, ca.bundles);
  const coldMs = ms(process.hrtime.bigint() - t0) / n;

  // Validation, seen before (a workload reconnecting with the same SVID).
  const rounds = 10;
  t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) for (const s of svids) validateX509Svid(s.certificates, ca.bundles);
  const warmMs = ms(process.hrtime.bigint() - t0) / (n * rounds);

  // Full mTLS handshakes (no resumption), contexts built once, as the relay does.
  const server = await ca.issue('spiffe://example.org/relay/bench');
  const client = svids[0];
  // A tls.Server builds its one context from these options at creation (its `secureContext`
  // option is not honoured); clients take a prebuilt context.
  const srv = tls.createServer(
    { key: server.privateKeyPem(), cert: server.certificatesPem(), ca: ca.bundlePem, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (s) => s.end(),
  );
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  const clientCtx = tls.createSecureContext({ key: client.privateKeyPem(), cert: client.certificatesPem(), ca: ca.bundlePem, minVersion: 'TLSv1.3' });
  const hs = [];
  const handshakes = quick ? 30 : 150;
  for (let i = 0; i < handshakes + 10; i++) {
    const start = process.hrtime.bigint();
    const sock = tls.connect({ host: '127.0.0.1', port, secureContext: clientCtx, checkServerIdentity: () => undefined, minVersion: 'TLSv1.3' });
    await once(sock, 'secureConnect');
    if (i >= 10) hs.push(ms(process.hrtime.bigint() - start));
    sock.destroy();
  }
  srv.close();
  const handshakeMs = median(hs);
  return { n, issueMs, coldMs, warmMs, handshakeMs };
}

export function printPki(r) {
  const pct = (x) => `${((x / r.handshakeMs) * 100).toFixed(1)} %`;
  console.log('## Identity (pki)');
  console.log(`X509-SVID issuance           ${(1000 / r.issueMs).toFixed(0).padStart(8)} /s   (${r.issueMs.toFixed(2)} ms each, key generation included)`);
  console.log(`peer-SVID validation, cold   ${(1000 / r.coldMs).toFixed(0).padStart(8)} /s   (${(r.coldMs * 1000).toFixed(0)} µs; ${pct(r.coldMs)} of a handshake)`);
  console.log(`peer-SVID validation, warm   ${(1000 / r.warmMs).toFixed(0).padStart(8)} /s   (${(r.warmMs * 1000).toFixed(1)} µs; ${pct(r.warmMs)} of a handshake)`);
  console.log(`full TLS 1.3 mTLS handshake  ${(1000 / r.handshakeMs).toFixed(0).padStart(8)} /s   (${r.handshakeMs.toFixed(2)} ms median, same run)`);
  console.log(`goal: SPIFFE checks < 10 % of a handshake → cold ${pct(r.coldMs)}, warm ${pct(r.warmMs)}: ${r.coldMs / r.handshakeMs < 0.1 ? 'met' : 'NOT met'}`);
}
