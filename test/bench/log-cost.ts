/**
 * The CPU cost of one access line (built, batched per turn, written to stdout), apart from the
 * proxy. Only a lower bound: in the loaded proxy the same line measured several times as much
 * (issue 6), so compare changes with `npm run bench` too.
 *
 *   npx tsx test/bench/log-cost.ts > /dev/null        # prints to stderr
 */
import { createAccessLog, createLogger, type AccessLine } from '../../src/observability/log.js';

const LINES = 50_000;
const logger = createLogger();
const accessLog = createAccessLog(logger);
const line: AccessLine = {
  method: 'GET',
  path: '/api/orders',
  route: null,
  status: 200,
  outcome: 'allowed',
  code: null,
  provider: 'bench',
  cache: 'hit',
  check: 'introspection',
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
      accessLog(line);
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
    `(user ${(used.user / LINES).toFixed(2)}, system ${(used.system / LINES).toFixed(2)}; writes included)\n`,
);
