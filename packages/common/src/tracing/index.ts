import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { z } from 'zod';
import { integer, object, record, string } from '../config/schema.js';

/**
 * OpenTelemetry tracing for the relay and the connector, off unless configured: each runs its own
 * tracer provider (never the global one, so several relays in one process stay apart), exports by
 * OTLP over HTTP (JSON) in batches, and carries W3C trace context (`traceparent`) between hops
 * explicitly — in link frames and in a request's `params._meta` — rather than through an ambient
 * context. docs/operations.md, "Tracing".
 */

/** TracingSetting is the `tracing` section of relay.yaml and connector.yaml. */
export interface TracingSetting {
  /** otlp is where spans go: an OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`). */
  otlp: { endpoint: string; headers?: Record<string, string> };
  /** serviceName names the process in traces (default `switchboard-relay` / `switchboard-connector`). */
  serviceName?: string;
  /** sampleRatio is the share of new traces recorded, 0–1 (default 1); a sampled parent is always followed. */
  sampleRatio?: number;
  /** batchDelayMs is how long finished spans wait to be sent together (default 1000). */
  batchDelayMs?: number;
}

/** tracingSchema validates a `tracing` section (unknown keys are errors, as everywhere). */
export const tracingSchema = object({
  otlp: object({
    endpoint: string({ what: 'an OTLP/HTTP traces endpoint, http://host:4318/v1/traces' }).refine((v) => /^https?:\/\/\S+$/.test(v), 'must be an http:// or https:// URL (an OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces)'),
    headers: record(string({ allowEmpty: true }), 'a mapping of header name to value').optional(),
  }),
  serviceName: string({ what: 'a service name' }).max(128, 'must be at most 128 characters').optional(),
  sampleRatio: z.number({ error: 'must be a number from 0 to 1' }).min(0, 'must be a number from 0 to 1').max(1, 'must be a number from 0 to 1').optional(),
  batchDelayMs: integer(1, 60_000).optional(),
});

const propagator = new W3CTraceContextPropagator();
const setter = { set: (carrier: Record<string, string>, key: string, value: string) => void (carrier[key] = value) };
const getter = {
  get: (carrier: Record<string, string>, key: string) => carrier[key],
  keys: (carrier: Record<string, string>) => Object.keys(carrier),
};

/** TRACEPARENT_LENGTH is the length of a version-00 `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`). */
export const TRACEPARENT_LENGTH = 55;

/**
 * Tracing starts spans and moves their context between hops. {@link Tracing.off} does nothing and
 * costs nothing (every method returns at once); {@link Tracing.start} exports by OTLP.
 */
export class Tracing {
  /** enabled is false for {@link Tracing.off}: callers skip building what only a span would use. */
  readonly enabled: boolean;
  private readonly tracer: Tracer | undefined;
  private readonly provider: TracerProvider | undefined;

  private constructor(provider: TracerProvider | undefined, name: string) {
    this.provider = provider;
    this.tracer = provider?.getTracer(name);
    this.enabled = provider !== undefined;
  }

  /** off is tracing switched off. */
  static readonly off = new Tracing(undefined, 'off');

  /** start makes a tracer provider exporting to `setting.otlp.endpoint`. */
  static start(setting: TracingSetting, defaults: { serviceName: string; serviceVersion?: string }): Tracing {
    const exporter = new OTLPTraceExporter({ url: setting.otlp.endpoint, ...(setting.otlp.headers ? { headers: setting.otlp.headers } : {}) });
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': setting.serviceName ?? defaults.serviceName, ...(defaults.serviceVersion ? { 'service.version': defaults.serviceVersion } : {}) }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(setting.sampleRatio ?? 1) }),
      spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: setting.batchDelayMs ?? 1000 })],
    });
    return new Tracing(provider, defaults.serviceName);
  }

  /**
   * span starts a span, child of `parent` — a span of ours, or a `traceparent` that came from
   * another hop (an invalid one is ignored: the span starts a new trace). Undefined when off.
   */
  span(name: string, options: { parent?: Span | string | undefined; kind?: SpanKind; attributes?: Attributes } = {}): Span | undefined {
    if (this.tracer === undefined) return undefined;
    const p = options.parent;
    const ctx: Context = p === undefined ? ROOT_CONTEXT : typeof p === 'string' ? propagator.extract(ROOT_CONTEXT, { traceparent: p }, getter) : trace.setSpan(ROOT_CONTEXT, p);
    return this.tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, ...(options.attributes ? { attributes: options.attributes } : {}) }, ctx);
  }

  /** traceparent is the W3C `traceparent` naming `span` as the parent of the next hop. */
  traceparent(span: Span | undefined): string | undefined {
    if (span === undefined) return undefined;
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    return carrier.traceparent;
  }

  /** flush sends the finished spans now. */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }

  /** shutdown sends what is left and stops exporting. */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }
}

/** endSpan ends `span`, marking it an error with `message` when given. */
export function endSpan(span: Span | undefined, error?: string, attributes?: Attributes): void {
  if (span === undefined) return;
  if (attributes) span.setAttributes(attributes);
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end();
}

/** validTraceparent reports whether `v` is a version-00 W3C traceparent with non-zero ids. */
export function validTraceparent(v: unknown): v is string {
  return typeof v === 'string' && v.length === TRACEPARENT_LENGTH && /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/.test(v);
}

export { SpanKind, SpanStatusCode };
export type { Span };
