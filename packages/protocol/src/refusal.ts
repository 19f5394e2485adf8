import type { IncomingMessage } from 'node:http';

/**
 * How a relay refuses a WebSocket upgrade: an HTTP status and a `text/plain` body whose first line
 * says why (docs/errors.md lists them). The relay writes it with {@link refusalBody}; the connector
 * and the agent SDK read it with {@link readRefusalReason}. Only the first line is read, and at most
 * {@link MAX_REFUSAL_READ_BYTES}: a hostile or broken peer cannot make a client buffer a large body.
 */

/** MAX_REFUSAL_READ_BYTES bounds how much of a refusal body a client reads. */
export const MAX_REFUSAL_READ_BYTES = 512;
/** MAX_REFUSAL_REASON_CHARS bounds the reason a client reports. */
export const MAX_REFUSAL_REASON_CHARS = 200;

/** refusalBody is the body of a refused upgrade: the reason on one line. */
export function refusalBody(reason: string): string {
  return `${reason.replace(/[\r\n]+/g, ' ')}\n`;
}

/**
 * readRefusalReason reads the first line of a refused upgrade's body, trimmed and cut to
 * {@link MAX_REFUSAL_REASON_CHARS}; `''` when there is none. It settles once, on the first of: a
 * newline, {@link MAX_REFUSAL_READ_BYTES} read, the end of the body, an error or a close.
 */
export function readRefusalReason(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      res.off('data', onData);
      resolve((body.split('\n')[0] ?? '').trim().slice(0, MAX_REFUSAL_REASON_CHARS));
    };
    const onData = (chunk: string): void => {
      body += chunk;
      if (body.length >= MAX_REFUSAL_READ_BYTES || body.includes('\n')) finish();
    };
    res.setEncoding('utf8');
    res.on('data', onData);
    res.once('end', finish);
    res.once('error', finish);
    res.once('close', finish);
  });
}
