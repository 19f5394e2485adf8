import type { OpenPayload } from '@switchboard/protocol';
import type { ServerConfig } from '../config.js';
import type { Logger } from '@switchboard/common';
import type { BackendSession, BackendSink } from './backend.js';
import { HttpBackend } from './http-backend.js';
import { StdioBackend } from './stdio-backend.js';
import type { SandboxPlan } from '../sandbox/sandbox.js';

/**
 * createBackend is the default backend factory: a stdio process (inside its sandbox when `plan`
 * is given) or a Streamable-HTTP session, per the server's config.
 */
export function createBackend(server: ServerConfig, open: OpenPayload, sink: BackendSink, logger: Logger, plan?: SandboxPlan): BackendSession {
  return server.kind === 'stdio' ? new StdioBackend(server, open, sink, logger, plan) : new HttpBackend(server, open, sink, logger);
}
