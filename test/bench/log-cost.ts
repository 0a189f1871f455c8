/**
 * The CPU cost of one access line (pino → stdout), apart from the proxy: the access log is on by
 * default and was the largest item of tollgate's own work per request in the CPU profile.
 *
 *   npx tsx test/bench/log-cost.ts > /dev/null        # prints to stderr
 */
import { createAccessLogger, createLogger } from '../../src/observability/log.js';

const LINES = 50_000;
const logger = createAccessLogger(createLogger());
const line = {
  method: 'GET',
  path: '/api/orders',
  route: null,
  status: 200,
  outcome: 'allowed',
  code: null,
  provider: 'bench',
  cache: 'hit',
  duration_ms: 0.512,
  upstream_ms: 0.301,
};

const before = process.cpuUsage();
let written = 0;
await new Promise<void>((resolve) => {
  // 50 lines per turn of the event loop, as a busy proxy writes them.
  const turn = () => {
    for (let k = 0; k < 50 && written < LINES; k++, written++) {
      line.duration_ms = written / 1000;
      logger.info(line, 'request');
    }
    if (written < LINES) setImmediate(turn);
    else resolve();
  };
  turn();
});
await new Promise<void>((resolve) => logger.flush(() => resolve()));
const used = process.cpuUsage(before);
process.stderr.write(
  `${((used.user + used.system) / LINES).toFixed(2)} us CPU per access line ` +
    `(user ${(used.user / LINES).toFixed(2)}, system ${(used.system / LINES).toFixed(2)}; threadpool writes included)\n`,
);
