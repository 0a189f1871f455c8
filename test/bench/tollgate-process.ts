/**
 * tollgate in a process of its own for the benchmarks, so its heap, handles and sockets are
 * measured apart from the load generator and the fake provider. Started by `bench-kit.ts` with
 * `--expose-gc`; the configuration arrives as JSON in TOLLGATE_BENCH_CONFIG. Answers the parent's
 * `stats` message (after a full GC when asked) and stops on `close`. Access lines go to stdout
 * as in production (the parent discards them).
 */
import { startApp } from '../../src/app.js';
import { formatProblems, validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/log.js';

export interface ProcessStats {
  heapUsedBytes: number;
  rssBytes: number;
  /** process.getActiveResourcesInfo(), counted by kind (TCPSocketWrap, Timeout…). */
  resources: Record<string, number>;
  cacheEntries: number;
}

const result = validateConfig(JSON.parse(process.env.TOLLGATE_BENCH_CONFIG ?? '{}'));
if (!result.ok) throw new Error(formatProblems(result.problems));
const app = await startApp({ config: result.config, logger: createLogger({ level: 'info' }) });
await app.whenReady();

const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (message: { type: 'stats'; gc?: boolean } | { type: 'close' }) => {
  if (message.type === 'close') {
    void app.close(5000).then(() => process.exit(0));
    return;
  }
  if (message.gc) {
    // Twice: the first pass may only queue finalizers that free more.
    gc?.();
    gc?.();
  }
  void app.metrics.registry
    .getSingleMetric('tollgate_cache_entries')
    ?.get()
    .then((entries) => {
      const resources: Record<string, number> = {};
      for (const kind of process.getActiveResourcesInfo()) resources[kind] = (resources[kind] ?? 0) + 1;
      const stats: ProcessStats = {
        heapUsedBytes: process.memoryUsage().heapUsed,
        rssBytes: process.memoryUsage().rss,
        resources,
        cacheEntries: entries.values[0]?.value ?? 0,
      };
      process.send!({ type: 'stats', stats });
    });
});
process.send!({ type: 'ready', proxyUrl: app.proxyUrl, adminUrl: app.adminUrl });
