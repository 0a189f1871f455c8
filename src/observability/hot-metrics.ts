/**
 * Counters and histograms for the request path. prom-client's own re-hash and re-check their label
 * values at every call, and a histogram turns the bucket's bound into a string at every
 * observation: on the benchmark's cache hit (issue 6) its four calls per request cost more CPU than
 * routing, the token, the cache and the checks together. Here a label set's child is found by one
 * map lookup per label, and a call is an addition (counter) or a short loop and three additions
 * (histogram).
 *
 * They keep prom-client's metric contract (`name`, `help`, `type`, `get()`) and register in its
 * Registry, which renders them exactly as its own Counter and Histogram.
 */
import type { Registry } from 'prom-client';

/** What prom-client's Registry reads of a metric (its `get()`), as its Counter and Histogram give it. */
export interface ExportedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  readonly values: { labels: Record<string, string | number>; value: number; metricName?: string }[];
}

type Labels<L extends string> = Record<L, string>;

/** Children by label values, one map level per label; a child is created (at zero) on first use. */
class Children<L extends string, C> {
  private readonly root = new Map<string, unknown>();
  readonly all: { labels: Labels<L>; child: C }[] = [];

  constructor(
    private readonly labelNames: readonly L[],
    private readonly create: () => C,
  ) {}

  get(values: readonly string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`expected ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${values.length}`);
    }
    let level = this.root;
    for (let i = 0; i < values.length - 1; i++) {
      let next = level.get(values[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) level.set(values[i]!, (next = new Map()));
      level = next;
    }
    const last = values[values.length - 1]!;
    let child = level.get(last) as C | undefined;
    if (child === undefined) {
      child = this.create();
      level.set(last, child);
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!])) as Labels<L>;
      this.all.push({ labels, child });
    }
    return child;
  }
}

export interface CounterChild {
  inc(by?: number): void;
}

export class HotCounter<L extends string> {
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  private readonly children: Children<L, { value: number } & CounterChild>;

  readonly name: string;
  readonly help: string;

  constructor(options: { name: string; help: string; labelNames: readonly L[]; registry: Registry }) {
    this.name = options.name;
    this.help = options.help;
    this.children = new Children(options.labelNames, () => {
      const child = {
        value: 0,
        inc(by = 1) {
          child.value += by;
        },
      };
      return child;
    });
    options.registry.registerMetric(this as never);
  }

  /** The series of these label values (in `labelNames` order), at 0 from its first use. */
  labels(...values: string[]): CounterChild {
    return this.children.get(values);
  }

  async get(): Promise<ExportedMetric> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.children.all.map(({ labels, child }) => ({ labels, value: child.value })),
    };
  }
}

export interface HistogramChild {
  observe(value: number): void;
}

export class HotHistogram<L extends string> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly children: Children<L, { counts: Float64Array; sum: number; count: number } & HistogramChild>;

  readonly name: string;
  readonly help: string;
  private readonly buckets: readonly number[];

  constructor(options: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registry: Registry }) {
    this.name = options.name;
    this.help = options.help;
    const buckets = (this.buckets = options.buckets);
    this.children = new Children(options.labelNames, () => {
      const child = {
        // One count per bucket and one for +Inf; not cumulative until exported.
        counts: new Float64Array(buckets.length + 1),
        sum: 0,
        count: 0,
        observe(value: number) {
          let i = 0;
          while (i < buckets.length && value > buckets[i]!) i++;
          child.counts[i]!++;
          child.sum += value;
          child.count++;
        },
      };
      return child;
    });
    options.registry.registerMetric(this as never);
  }

  labels(...values: string[]): HistogramChild {
    return this.children.get(values);
  }

  async get(): Promise<ExportedMetric> {
    const values: ExportedMetric['values'] = [];
    for (const { labels, child } of this.children.all) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += child.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: child.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: child.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: child.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
