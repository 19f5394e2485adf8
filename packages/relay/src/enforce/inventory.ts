/**
 * The relay's live MCP inventory: for each server, the tools of the last complete `tools/list`
 * the relay saw (after pinning: drifted and unapproved tools are not in it). `GET /v1/servers`
 * filters it per caller. Only what a catalog shows is kept: name, title, description.
 */

/** InventoryTool is one tool as the catalog shows it. */
export interface InventoryTool {
  readonly name: string;
  readonly title?: string;
  readonly description?: string;
}

/** ServerInventory is what the relay last saw of one server. */
export interface ServerInventory {
  readonly tools: readonly InventoryTool[];
  /** seenAt is when the list was seen (ISO 8601). */
  readonly seenAt: string;
}

const MAX_TOOLS = 2048;
const MAX_DESCRIPTION = 1024;

/** toInventoryTool keeps the catalog fields of a tool definition (already validated by pinning or policy). */
export function toInventoryTool(t: Record<string, unknown>): InventoryTool {
  const out: { name: string; title?: string; description?: string } = { name: String(t.name) };
  if (typeof t.title === 'string') out.title = t.title.slice(0, 256);
  if (typeof t.description === 'string') out.description = t.description.length > MAX_DESCRIPTION ? `${t.description.slice(0, MAX_DESCRIPTION)}…` : t.description;
  return Object.freeze(out);
}

/** Inventory holds the last tool list seen per server. */
export class Inventory {
  private readonly servers = new Map<string, ServerInventory>();

  /** set replaces the tool list of `server`. */
  set(server: string, tools: readonly InventoryTool[]): void {
    this.servers.set(server, Object.freeze({ tools: Object.freeze(tools.slice(0, MAX_TOOLS)), seenAt: new Date().toISOString() }));
  }

  /** get returns what was last seen of `server`. */
  get(server: string): ServerInventory | undefined {
    return this.servers.get(server);
  }
}
