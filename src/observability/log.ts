/**
 * pino, JSON on stdout (SPEC §6). `redact` is not optional: pino's request serializers log every
 * header, and a provider error may carry the request it failed on. Nothing tollgate logs is built
 * from a token, but these paths make sure a mistake elsewhere cannot leak one either.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Outcome } from '../errors.js';
import type { CacheResult } from './metrics.js';

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
  /** Where lines go; default stdout, batched per turn of the event loop (batchedPerTurn). */
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
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      timestamp: isoTime,
      base: { service: 'tollgate' },
    },
    options.destination ?? stdout(),
  );
}

/** A destination pino can flush (`logger.flush(cb)`). */
export interface TurnBatchedDestination extends DestinationStream {
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

let stdoutDestination: TurnBatchedDestination | undefined;

/** stdout, one per process: lines batched per turn (below), whatever is pending written on exit. */
function stdout(): TurnBatchedDestination {
  if (stdoutDestination === undefined) {
    const sonic = pino.destination({ dest: 1, sync: true });
    // pino's destination already drops lines once stdout's reader is gone (EPIPE) and re-emits any
    // other write error, which would be uncaught at the end of a turn: lines are lost instead,
    // the proxy keeps serving.
    sonic.on('error', () => {});
    const destination = batchedPerTurn(sonic);
    process.once('exit', () => {
      try {
        destination.flushSync();
      } catch {
        // nowhere left to write to
      }
    });
    stdoutDestination = destination;
  }
  return stdoutDestination;
}

/** What batchedPerTurn writes through (sonic-boom, as pino.destination makes it). */
export interface SyncDestination {
  write(data: string): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * SPEC §6's lines, written together at the end of each turn of the event loop: one synchronous
 * write for all the access lines of the requests a turn answered. Measured in the benchmark's cache
 * hit (issue 6): a write per line costs a syscall each; sonic-boom's asynchronous 4 KiB batches
 * (written on the libuv threadpool) cost about 9 µs of CPU per line, hand-offs between threads and
 * the growing batch measured again at every line; one write per turn costs what no access log at
 * all costs, within the noise (1–2 µs). sonic-boom still does the writing: partial writes, and
 * EAGAIN on a full pipe, where it waits, as pino's default synchronous destination does.
 */
export function batchedPerTurn(destination: SyncDestination): TurnBatchedDestination {
  let pending: string[] = [];
  const writePending = () => {
    if (pending.length === 0) return;
    const lines = pending.length === 1 ? pending[0]! : pending.join('');
    pending = [];
    destination.write(lines);
  };
  return {
    write(line: string) {
      if (pending.length === 0) setImmediate(writePending);
      pending.push(line);
    },
    flush(cb) {
      writePending();
      destination.flush(cb);
    },
    flushSync() {
      writePending();
      destination.flushSync();
    },
  };
}

/** The access line of SPEC §6: every field at the top level, null where it does not apply. */
export interface AccessLine {
  method: string;
  path: string | null;
  route: number | null;
  status: number;
  outcome: Outcome;
  code: string | null;
  provider: string | null;
  cache: CacheResult | null;
  duration_ms: number;
  upstream_ms: number | null;
}

/**
 * Writes the access line (SPEC §6) to the logger's destination, in pino's format, at pino's `info`
 * level: the line a `logger.info(line, 'request')` would write, built by hand. Its fields are
 * fixed and tollgate builds every one of them (no token can be among them, so no redaction
 * applies), and pino's generic serialisation of them was the largest part of the line's cost on a
 * cache hit (issue 6). test/observability/log.test.ts holds it equal to pino's own output.
 */
export function createAccessLog(logger: Logger): (line: AccessLine) => void {
  // pino's own parts of a line, from its public symbols: where lines go, the time, the bindings.
  const internals = logger as unknown as Record<symbol, unknown>;
  const destination = internals[pino.symbols.streamSym] as DestinationStream;
  const time = internals[pino.symbols.timeSym] as () => string;
  const head = `{"level":${logger.levels.values.info}`;
  const bindings = internals[pino.symbols.chindingsSym] as string;
  return (line) => {
    if (!logger.isLevelEnabled('info')) return;
    destination.write(
      `${head}${time()}${bindings},"method":${JSON.stringify(line.method)},"path":${orNull(line.path)},` +
        `"route":${line.route},"status":${line.status},"outcome":"${line.outcome}","code":${orNull(line.code)},` +
        `"provider":${orNull(line.provider)},"cache":${line.cache === null ? 'null' : `"${line.cache}"`},` +
        `"duration_ms":${line.duration_ms},"upstream_ms":${line.upstream_ms},"msg":"request"}\n`,
    );
  };
}

const orNull = (value: string | null): string => (value === null ? 'null' : JSON.stringify(value));
