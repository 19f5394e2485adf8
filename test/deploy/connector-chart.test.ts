// The connector chart's example values mean what they say (no helm binary here to render the chart):
// its `servers` are a valid connector.yaml `servers` section, and the NetworkPolicy's destinations
// cover every address the servers' egress lists name — the network layer says what the proxy says.
import { readFileSync } from 'node:fs';
import { BlockList } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConnectorConfig, type EgressRule, type StdioServerConfig } from '@switchboard/connector';
import { ROOT } from '../e2e/world.js';

const CHART = join(ROOT, 'deploy/helm/switchboard-connector');
const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
  relays: string[];
  relayId: string;
  servers: Record<string, unknown>;
  networkPolicy: { destinations: { cidr: string; ports: number[] }[]; relays: { cidr: string; port: number }[] };
};

describe('deploy/helm/switchboard-connector', () => {
  it('its servers are a valid connector config (containment keys included)', () => {
    const config = parseConnectorConfig({ relays: values.relays, relayId: values.relayId, identity: '/var/lib/switchboard/identity', servers: values.servers });
    expect(Object.keys(config.servers)).toEqual(Object.keys(values.servers));
  });

  it('the NetworkPolicy lets out every IP/CIDR destination the servers declare, on its ports', () => {
    const config = parseConnectorConfig({ relays: values.relays, identity: '/x', servers: values.servers });
    const rules = Object.values(config.servers).flatMap((s) => {
      const egress = (s as StdioServerConfig).containment?.egress;
      return Array.isArray(egress) ? (egress as EgressRule[]) : [];
    });
    for (const r of rules.filter((x) => x.kind === 'cidr')) {
      if (r.kind !== 'cidr') continue;
      for (const port of r.ports) {
        const covered = values.networkPolicy.destinations.some((d) => {
          const [net, prefix] = d.cidr.split('/');
          const b = new BlockList();
          b.addSubnet(net as string, Number(prefix), r.family);
          return d.ports.includes(port) && b.check(r.network, r.family) && Number(prefix) <= r.prefix;
        });
        expect(covered, `${r.text} port ${port} is in networkPolicy.destinations`).toBe(true);
      }
    }
    expect(rules.some((r) => r.kind === 'cidr')).toBe(true);
    expect(values.networkPolicy.relays.length).toBeGreaterThan(0);
  });

  it('the templates reference only values that exist', () => {
    for (const t of ['configmap.yaml', 'deployment.yaml', 'networkpolicy.yaml']) {
      const text = readFileSync(join(CHART, 'templates', t), 'utf8');
      for (const m of text.matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)) {
        let v: unknown = values;
        for (const k of (m[1] as string).split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
        expect(v, `${t}: .Values.${m[1]}`).toBeDefined();
      }
    }
  });
});
