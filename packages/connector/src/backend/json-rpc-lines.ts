import { ReadBuffer, STDIO_DEFAULT_MAX_BUFFER_SIZE } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcMessage } from '@switchboard/protocol';

const NL = 0x0a;
const CR = 0x0d;

/**
 * JsonRpcLineBuffer is a drop-in for the SDK's stdio `ReadBuffer` (same contract: `append`,
 * `readMessage`, `clear`; same size bound and error; lines split on "\n" with one trailing "\r"
 * dropped) for the connector, which only forwards what a backend writes:
 * - each line is `JSON.parse`d and checked with {@link isJsonRpcMessage} (exactly what the SDK's
 *   zod `JSONRPCMessageSchema` accepts) instead of rebuilt by zod, and the line is kept so the
 *   session forwards the backend's own bytes instead of serialising the message again;
 * - a message arriving in many chunks costs linear time: chunks without a newline wait in a list
 *   and are joined once, where the SDK re-concatenates and re-scans the whole buffer per chunk
 *   (a 16 MiB message in 64 KiB reads: ~1.5 s of CPU, during which every session on the link stalls).
 * A line that fails throws, as the SDK's decoder does: the transport reports it to `onerror` and
 * reads on.
 */
export class JsonRpcLineBuffer extends ReadBuffer {
  private readonly maxBytes: number;
  // Unread bytes, in order: `head`, then `tail`. Only `head` can hold a newline; no newline lies
  // in head[0, scanned).
  private head: Buffer | undefined;
  private scanned = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private lastMessage: JSONRPCMessage | undefined;
  private lastLine: string | undefined;

  constructor(options?: { maxBufferSize?: number }) {
    super(options);
    this.maxBytes = options?.maxBufferSize ?? STDIO_DEFAULT_MAX_BUFFER_SIZE;
  }

  override append(chunk: Buffer): void {
    const head = this.head;
    if ((head?.length ?? 0) + this.tailBytes + chunk.length > this.maxBytes) {
      this.clear();
      throw new Error(`ReadBuffer exceeded maximum size of ${this.maxBytes} bytes`);
    }
    if (head === undefined) {
      this.head = chunk;
      this.scanned = 0;
    } else if (chunk.indexOf(NL) === -1) {
      this.tail.push(chunk);
      this.tailBytes += chunk.length;
    } else {
      this.head = Buffer.concat(this.tailBytes === 0 ? [head, chunk] : [head, ...this.tail, chunk]);
      this.tail = [];
      this.tailBytes = 0;
    }
  }

  override readMessage(): JSONRPCMessage | null {
    const head = this.head;
    if (head === undefined) return null;
    const nl = head.indexOf(NL, this.scanned);
    if (nl === -1) {
      this.scanned = head.length;
      return null;
    }
    const line = head.toString('utf8', 0, nl > 0 && head[nl - 1] === CR ? nl - 1 : nl);
    if (nl + 1 < head.length) {
      this.head = head.subarray(nl + 1);
      this.scanned = 0;
    } else if (this.tailBytes > 0) {
      // The tail holds no newline: it becomes the head, already scanned.
      this.head = this.tail.length === 1 ? (this.tail[0] as Buffer) : Buffer.concat(this.tail);
      this.scanned = this.head.length;
      this.tail = [];
      this.tailBytes = 0;
    } else {
      this.head = undefined;
    }
    const message: unknown = JSON.parse(line);
    if (!isJsonRpcMessage(message)) throw new TypeError('backend wrote a line that is not one JSON-RPC 2.0 message');
    this.lastMessage = message;
    this.lastLine = line;
    return message;
  }

  /** lineOf returns the line `message` was read from, if it is the message just read (once). */
  lineOf(message: JSONRPCMessage): string | undefined {
    if (message !== this.lastMessage) return undefined;
    const line = this.lastLine;
    this.lastMessage = undefined;
    this.lastLine = undefined;
    return line;
  }

  override clear(): void {
    super.clear();
    this.head = undefined;
    this.scanned = 0;
    this.tail = [];
    this.tailBytes = 0;
    this.lastMessage = undefined;
    this.lastLine = undefined;
  }
}
