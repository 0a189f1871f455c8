/**
 * pino, JSON on stdout (SPEC §6). `redact` is not optional: pino's request serializers log every
 * header, and a provider error may carry the request it failed on. Nothing tollgate logs is built
 * from a token, but these paths make sure a mistake elsewhere cannot leak one either.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS: readonly string[] = [
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'client_secret',
  '*.client_secret',
  'authorization',
  '*.authorization',
  'Authorization',
  '*.Authorization',
  'cookie',
  '*.cookie',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
];

export interface LoggerOptions {
  /** pino level; default `info` (TOLLGATE_LOG_LEVEL). */
  level?: string;
  /** Where lines go; default stdout, written asynchronously so a line costs the hot path little. */
  destination?: DestinationStream;
}

let lastMs = -1;
let lastTime = '';

/**
 * pino's isoTime, formatted once per millisecond: under load many lines share a millisecond, and
 * Date#toISOString was as costly as serialising the access line itself (profile of scenario (a)).
 */
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  // SPEC §6: written asynchronously in batches. One write per line cost a syscall on the libuv
  // threadpool per request (a third of tollgate's own CPU time per request in the benchmark);
  // 4 KiB batches cost one per ~15 lines. periodicFlush bounds how long a quiet sidecar holds a
  // line; pino flushes what is left synchronously on exit, and App.close() flushes too.
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 1000 });
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      timestamp: isoTime,
      base: { service: 'tollgate' },
    },
    destination,
  );
}

/**
 * The logger of the access line (SPEC §6): same destination, same format. The line is flat and
 * tollgate builds every field of it (method, normalised path, route, status, outcome, code,
 * provider, cache, durations), so only the top-level redaction paths can ever apply to it. The
 * wildcard paths (`*.token`) make pino pass every string field of every line through the
 * redactor — the largest item of tollgate's own work on a cache hit after the log writes
 * themselves — so this child keeps the top-level paths and drops the wildcards.
 */
export function createAccessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: REDACT_PATHS.filter((p) => !p.includes('*')), censor: '[redacted]' } });
}
