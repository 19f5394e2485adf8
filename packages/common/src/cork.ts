/**
 * Write coalescing: the first write to a stream in an event-loop turn corks it and a nextTick
 * uncorks it, so everything written in that turn leaves in one writev (one TLS record batch, one
 * syscall) instead of one syscall per frame or line. The relay uses it on its TLS sockets, the
 * connector on its link and on each stdio server's stdin.
 */

/** Corkable is the part of a stream.Writable that coalescing needs. */
export interface Corkable {
  cork(): void;
  uncork(): void;
  readonly destroyed?: boolean;
}

const kCorked = Symbol('switchboard.corked');
type Marked = Corkable & { [kCorked]?: boolean };

function uncorkLater(socket: Marked): void {
  socket[kCorked] = false;
  socket.uncork();
}

/** coalesce corks `socket` until the end of the current tick (idempotent within a tick). */
export function coalesce(socket: Corkable): void {
  const s = socket as Marked;
  if (s[kCorked] === true || s.destroyed === true) return;
  s[kCorked] = true;
  s.cork();
  process.nextTick(uncorkLater, s);
}
