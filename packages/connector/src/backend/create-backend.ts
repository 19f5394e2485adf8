import type { OpenPayload } from '@switchboard/protocol';
import type { ServerConfig } from '../config.js';
import type { Logger } from '@switchboard/common';
import type { BackendSession, BackendSink } from './backend.js';
import { HttpBackend } from './http-backend.js';
import { StdioBackend } from './stdio-backend.js';

/** createBackend is the default backend factory: a stdio process or a Streamable-HTTP session, per the server's config. */
export function createBackend(server: ServerConfig, open: OpenPayload, sink: BackendSink, logger: Logger): BackendSession {
  return server.kind === 'stdio' ? new StdioBackend(server, open, sink, logger) : new HttpBackend(server, open, sink, logger);
}
