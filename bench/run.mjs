#!/usr/bin/env node
// `pnpm bench`: every figure is measured in this run, next to its baseline from the same run.
// `--quick` runs fewer iterations (used by the test suite to check the benchmark still runs).
import { benchPki, printPki } from './pki.mjs';
import { benchTunnel, printTunnel } from './tunnel.mjs';
import { benchGuard, printGuard } from './guard.mjs';
import { benchPolicy, printPolicy } from './policy.mjs';
import { benchAudit, printAudit } from './audit.mjs';
import { benchRelayAudit, printRelayAudit } from './audit-relay.mjs';
import { benchRenewal, printRenewal } from './renewal.mjs';
import { benchResilience, printResilience } from './resilience.mjs';
import { benchContainment, printContainment } from './containment.mjs';
import { benchMetrics, printMetrics } from './metrics.mjs';

const quick = process.argv.includes('--quick');
console.log(`Switchboard benchmark — node ${process.version}, ${new Date().toISOString()}${quick ? ' (quick)' : ''}\n`);
printPki(await benchPki({ quick }));
printTunnel(await benchTunnel({ quick }));
console.log('');
printPolicy(await benchPolicy({ quick }));
console.log('');
printGuard(await benchGuard({ quick }));
console.log('');
printAudit(await benchAudit({ quick }));
console.log('');
printRelayAudit(await benchRelayAudit({ quick }));
printRenewal(await benchRenewal({ quick }));
printResilience(await benchResilience({ quick }));
printContainment(await benchContainment({ quick }));
printMetrics(await benchMetrics({ quick }));
