/**
 * The connector registry: which servers are online on which connector links. A link registers the
 * servers WELCOME accepted; an agent session goes to the link for its server with the fewest
 * open sessions.
 */

/** RoutableLink is what the registry needs to know about a link. */
export interface RoutableLink {
  /** sessionCount is the number of sessions the link carries now. */
  readonly sessionCount: number;
  /** accepting is false once the link is draining (GOAWAY) or closing. */
  readonly accepting: boolean;
}

/** Registry maps server names to the links serving them. */
export class Registry<L extends RoutableLink = RoutableLink> {
  private readonly byServer = new Map<string, Set<L>>();

  /** add registers `link` as serving `server`. */
  add(server: string, link: L): void {
    let set = this.byServer.get(server);
    if (!set) {
      set = new Set();
      this.byServer.set(server, set);
    }
    set.add(link);
  }

  /** remove unregisters `link` for `server`. */
  remove(server: string, link: L): void {
    const set = this.byServer.get(server);
    if (!set) return;
    set.delete(link);
    if (set.size === 0) this.byServer.delete(server);
  }

  /** removeLink unregisters `link` for every server. */
  removeLink(link: L): void {
    for (const [server, set] of this.byServer) {
      if (set.delete(link) && set.size === 0) this.byServer.delete(server);
    }
  }

  /**
   * pick returns the accepting link for `server` with the fewest sessions and fewer than
   * `maxSessions`, or `undefined` when none can take a session.
   */
  pick(server: string, maxSessions: number): L | undefined {
    const set = this.byServer.get(server);
    if (!set) return undefined;
    let best: L | undefined;
    for (const link of set) {
      if (!link.accepting || link.sessionCount >= maxSessions) continue;
      if (best === undefined || link.sessionCount < best.sessionCount) best = link;
    }
    return best;
  }

  /** linksFor lists the links registered for `server`. */
  linksFor(server: string): L[] {
    return [...(this.byServer.get(server) ?? [])];
  }

  /** servers lists the servers with at least one registered link. */
  servers(): string[] {
    return [...this.byServer.keys()];
  }
}
