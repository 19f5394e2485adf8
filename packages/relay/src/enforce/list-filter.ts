import { isPlainObject } from '@switchboard/common/config';
import type { PolicyScope } from '../policy/scope.js';
import { toInventoryTool, type Inventory, type InventoryTool } from './inventory.js';
import type { PinRuntime } from './pin-runtime.js';
import type { ListKind } from './refusals.js';

/** ListField names a list result the relay filters. */
export type ListField = 'tools' | 'resources' | 'resourceTemplates' | 'prompts';

/** MAX_LISTED bounds the names a session remembers per list (across pages). */
const MAX_LISTED = 10_000;

/** visibleIn decides whether one entry of a list is shown under `scope`. */
export function visibleIn(scope: PolicyScope, field: ListField, name: string): boolean {
  if (field === 'tools') return scope.tool(name).allow;
  if (field === 'resources') return scope.resource(name).allow;
  if (field === 'resourceTemplates') return scope.template(name).allow;
  return scope.prompt(name).allow;
}

/**
 * ListFilter filters one session's list results and remembers what the server listed, so the
 * relay knows which tools this session was shown (pinning: a tool never shown is never callable)
 * and which lists an agent must re-read when a new policy changes what it may see.
 */
export class ListFilter {
  private readonly pins: PinRuntime;
  private readonly inventory: Inventory;
  private readonly server: string;
  private readonly connectorId: string;
  /** shown holds the tools this session was shown (after pinning), as of its last list. */
  private shownTools = new Set<string>();
  private building: { tools: InventoryTool[]; names: Set<string> } | undefined;
  private readonly names: Partial<Record<ListField, readonly string[]>> = {};

  constructor(pins: PinRuntime, inventory: Inventory, server: string, connectorId: string) {
    this.pins = pins;
    this.inventory = inventory;
    this.server = server;
    this.connectorId = connectorId;
  }

  /** shown reports whether `tool` was in a tools/list this session received (after pinning). */
  shown(tool: string): boolean {
    return this.shownTools.has(tool);
  }

  /**
   * filterTools filters one tools/list result: pinning first (server-wide: drifted, unapproved,
   * duplicate and invalid names dropped, events audited; other sessions told on a drift), then
   * the session's policy. Remembers the tools shown and feeds the relay's inventory.
   */
  filterTools(buf: Buffer, cursor: boolean, scope: PolicyScope, notifyOthers: () => void): string {
    const msg = JSON.parse(buf.toString('utf8')) as { result: Record<string, unknown> };
    const raw = Array.isArray(msg.result.tools) ? (msg.result.tools as unknown[]) : [];
    const mode = this.pins.modeFor(scope.snapshot.servers.get(this.server));
    let visible: Record<string, unknown>[];
    if (mode === undefined) {
      visible = raw.filter((t): t is Record<string, unknown> => isPlainObject(t) && typeof t.name === 'string');
    } else {
      const ev = this.pins.store.evaluateToolList(this.server, raw, mode);
      visible = ev.visible.filter((t): t is Record<string, unknown> => isPlainObject(t));
      if (ev.events.length > 0) {
        this.pins.record(ev.events, this.connectorId);
        // Other sessions of this server may still show a tool that just drifted: let them re-list.
        if (ev.events.some((e) => e.type === 'drift')) notifyOthers();
      }
    }
    if (!cursor || this.building === undefined) this.building = { tools: [], names: new Set() };
    const b = this.building;
    for (const t of visible) {
      // Bounded: a server paging forever cannot grow the session's state (tools past the bound are not callable).
      if (b.names.size >= MAX_LISTED) break;
      b.names.add(t.name as string);
      if (b.tools.length < 2048) b.tools.push(toInventoryTool(t));
    }
    if (typeof msg.result.nextCursor !== 'string') {
      this.shownTools = b.names;
      this.names.tools = [...b.names];
      this.inventory.set(this.server, b.tools);
      this.building = undefined;
    } else {
      // While paging, calls to tools on pages already seen pass.
      for (const n of b.names) this.shownTools.add(n);
    }
    msg.result.tools = visible.filter((t) => scope.tool(t.name as string).allow);
    return JSON.stringify(msg);
  }

  /** filterList filters one resources/list, resources/templates/list or prompts/list result by policy. */
  filterList(buf: Buffer, field: Exclude<ListField, 'tools'>, cursor: boolean, scope: PolicyScope): string {
    const key = field === 'resources' ? 'uri' : field === 'resourceTemplates' ? 'uriTemplate' : 'name';
    const msg = JSON.parse(buf.toString('utf8')) as { result: Record<string, unknown> };
    const raw = Array.isArray(msg.result[field]) ? (msg.result[field] as unknown[]) : [];
    const items = raw.filter((t): t is Record<string, unknown> => isPlainObject(t) && typeof t[key] === 'string');
    const names = items.map((t) => t[key] as string);
    const prior = this.names[field];
    this.names[field] = (cursor && prior !== undefined ? [...prior, ...names] : names).slice(0, MAX_LISTED);
    msg.result[field] = items.filter((t) => visibleIn(scope, field, t[key] as string));
    return JSON.stringify(msg);
  }

  /** changes lists the notifications an agent needs when its scope goes from `a` to `b`. */
  changes(a: PolicyScope, b: PolicyScope): ListKind[] {
    const out: ListKind[] = [];
    if (this.differs('tools', a, b)) out.push('tools');
    if (this.differs('resources', a, b) || this.differs('resourceTemplates', a, b)) out.push('resources');
    if (this.differs('prompts', a, b)) out.push('prompts');
    return out;
  }

  private differs(field: ListField, a: PolicyScope, b: PolicyScope): boolean {
    const names = this.names[field];
    if (names === undefined) return false;
    for (const n of names) if (visibleIn(a, field, n) !== visibleIn(b, field, n)) return true;
    return false;
  }

  /** listed reports whether the session ever received a list of this kind. */
  listed(what: ListKind): boolean {
    if (what === 'tools') return this.names.tools !== undefined;
    if (what === 'prompts') return this.names.prompts !== undefined;
    return this.names.resources !== undefined || this.names.resourceTemplates !== undefined;
  }
}
