import { JsonType, type MessageShape } from './strict-json.js';

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * RequestParams is the `params` object of one scanned request, parsed at most once. Enforcement
 * reads it when a decision needs more than `method` and `params.name` (a resource URI, a
 * completion reference, tool arguments to check or redact) and the audit record digests the same
 * parsed arguments, so a call's params are never parsed twice. It keeps the buffer the request
 * arrived in and copies the span of `params` out of the scan result (which the next message reuses);
 * the buffer is never modified.
 */
export class RequestParams {
  readonly buf: Buffer;
  private readonly start: number;
  private readonly end: number;
  private parsed: Record<string, unknown> | undefined;

  private constructor(buf: Buffer, start: number, end: number) {
    this.buf = buf;
    this.start = start;
    this.end = end;
  }

  /** RequestParams.of returns the params of the request just scanned into `shape`, or null when `params` is absent or not an object. */
  static of(buf: Buffer, shape: MessageShape): RequestParams | null {
    return shape.params.type === JsonType.OBJECT ? new RequestParams(buf, shape.params.start, shape.params.end) : null;
  }

  /** span is where `params` sits in {@link buf}: from its `{` to just after its `}`. */
  get span(): { start: number; end: number } {
    return { start: this.start, end: this.end };
  }

  /** value is `params`, parsed on first use (the scan already proved it is one strict JSON object). */
  get value(): Readonly<Record<string, unknown>> {
    return (this.parsed ??= JSON.parse(this.buf.toString('utf8', this.start, this.end)) as Record<string, unknown>);
  }

  /** arguments is `params.arguments` (undefined when absent). */
  get arguments(): unknown {
    return this.value.arguments;
  }

  /**
   * withArguments returns the request's bytes with `params.arguments` replaced by `args`;
   * everything outside `params` stays byte for byte as received.
   */
  withArguments(args: unknown): Buffer {
    const params = JSON.stringify({ ...this.value, arguments: args });
    return Buffer.concat([this.buf.subarray(0, this.start), Buffer.from(params, 'utf8'), this.buf.subarray(this.end)]);
  }
}

/**
 * withTraceparent returns `data` — the request `params` was scanned from, or the same request with
 * its arguments replaced (same prefix and suffix) — with `params._meta.traceparent` set to `tp`.
 * Without a `_meta`, the member is inserted at the start of `params` and every other byte stays as
 * received; when the agent sent its own `_meta`, `params` is written anew with `traceparent` replaced.
 */
export function withTraceparent(data: Buffer, params: RequestParams, tp: string): Buffer {
  const { start, end } = params.span;
  const meta = params.value._meta;
  if (meta === undefined) {
    const member = `"_meta":{"traceparent":${JSON.stringify(tp)}}${Object.keys(params.value).length > 0 ? ',' : ''}`;
    return Buffer.concat([data.subarray(0, start + 1), Buffer.from(member, 'utf8'), data.subarray(start + 1)]);
  }
  const suffix = params.buf.length - end;
  const current = JSON.parse(data.toString('utf8', start, data.length - suffix)) as Record<string, unknown>;
  const own = typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? (current._meta as Record<string, unknown>) : {};
  const text = JSON.stringify({ ...current, _meta: { ...own, traceparent: tp } });
  return Buffer.concat([data.subarray(0, start), Buffer.from(text, 'utf8'), data.subarray(data.length - suffix)]);
}

/** paramsOf is `params.value` of a request, or an empty object when it has none. */
export function paramsOf(params: RequestParams | null): Readonly<Record<string, unknown>> {
  return params === null ? EMPTY : params.value;
}
