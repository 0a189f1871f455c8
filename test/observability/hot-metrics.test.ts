/**
 * src/observability/hot-metrics.ts stands in for prom-client's Counter and Histogram on the request
 * path: for the same calls, the registry must render exactly the text prom-client's own would.
 */
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import t from 'tap';
import { HotCounter, HotHistogram } from '../../src/observability/hot-metrics.js';
import { LATENCY_BUCKETS_S } from '../../src/observability/metrics.js';

const OUTCOMES = ['allowed', 'public', 'unauthenticated'];
const PROVIDERS = ['acme', 'globex', 'none'];

t.test('a histogram renders as prom-client renders its own, for any observations', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.tuple(
          fc.constantFrom(...OUTCOMES),
          // Exactly on bucket bounds too: a bound belongs to its own bucket (le, "less or equal").
          fc.oneof(fc.double({ min: 0, max: 20, noNaN: true }), fc.constantFrom(...LATENCY_BUCKETS_S)),
        ),
        { maxLength: 200 },
      ),
      async (observations) => {
        const theirs = new Registry();
        const ours = new Registry();
        const options = { name: 'x_seconds', help: 'h', labelNames: ['outcome'] as const, buckets: LATENCY_BUCKETS_S };
        const reference = new Histogram({ ...options, labelNames: ['outcome'], registers: [theirs] });
        const hot = new HotHistogram({ ...options, registry: ours });
        for (const [outcome, seconds] of observations) {
          reference.labels(outcome).observe(seconds);
          hot.labels(outcome).observe(seconds);
        }
        return (await ours.metrics()) === (await theirs.metrics());
      },
    ),
    { seed: 6, numRuns: 200 },
  );
  t.pass('200 generated sequences render alike');
});

t.test('a counter with two labels renders as prom-client renders its own', async (t) => {
  const theirs = new Registry();
  const ours = new Registry();
  const reference = new Counter({ name: 'x_total', help: 'h', labelNames: ['outcome', 'provider'], registers: [theirs] });
  const hot = new HotCounter({ name: 'x_total', help: 'h', labelNames: ['outcome', 'provider'], registry: ours });
  for (let i = 0; i < 50; i++) {
    const outcome = OUTCOMES[i % 3]!;
    const provider = PROVIDERS[i % 2]!;
    reference.labels(outcome, provider).inc();
    hot.labels(outcome, provider).inc();
  }
  reference.labels('public', 'none').inc(0);
  hot.labels('public', 'none'); // a series starts at 0 on first use
  t.equal(await ours.metrics(), await theirs.metrics());
  t.match(await ours.metrics(), /^x_total\{outcome="public",provider="none"\} 0$/m);
});

t.test('the wrong number of label values is a bug, said at once', async (t) => {
  const hot = new HotCounter({ name: 'x_total', help: 'h', labelNames: ['outcome', 'provider'], registry: new Registry() });
  t.throws(() => hot.labels('allowed'), /expected 2 label values \(outcome, provider\), got 1/);
});
