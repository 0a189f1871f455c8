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
  /** Where lines go; default stdout, batched (`batched`). */
  destination?: DestinationStream;
}

let lastSecond = -1;
let secondPrefix = '';

/**
 * pino's isoTime, the date and time formatted once per second: under load many lines share a
 * second, and Date#toISOString was as costly as serialising the access line itself (profile of
 * scenario (a)).
 */
function isoTime(): string {
  return isoTimeAt(Date.now());
}

function isoTimeAt(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    // `2026-11-29T22:34:32.` — toISOString's text without its `000Z`.
    secondPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, -4)}`;
  }
  const ms = now - second * 1000;
  return `${secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
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
export interface BatchedDestination extends DestinationStream {
  /** A line whose text is made only when its batch is written. */
  writeLater(entry: Deferred): void;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

let stdoutDestination: BatchedDestination | undefined;

/** stdout, one per process: lines batched (below), whatever is pending written on exit. */
function stdout(): BatchedDestination {
  if (stdoutDestination === undefined) {
    const sonic = pino.destination({ dest: 1, sync: true });
    // pino's destination already drops lines once stdout's reader is gone (EPIPE) and re-emits any
    // other write error, which would be uncaught at the end of a turn: lines are lost instead,
    // the proxy keeps serving.
    sonic.on('error', () => {});
    const destination = batched(sonic);
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

/** What `batched` writes through (sonic-boom, as pino.destination makes it). */
export interface SyncDestination {
  write(data: string): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

export interface BatchOptions {
  /** The longest a line waits (milliseconds). */
  delayMs?: number;
  /** Pending lines are written as soon as they reach this many characters. */
  maxChars?: number;
}

/** A line whose text is made when its batch is written (the access line, `createAccessLog`). */
export interface Deferred {
  render(): string;
}

/** What a deferred line counts for towards `maxChars`: about an access line's length. */
const DEFERRED_CHARS = 256;

/**
 * SPEC §6's lines, written together: once 64 KiB are pending, or 100 ms after the first pending
 * line, whichever comes first — Envoy's access log works the same way (64 KiB, 1 s by default).
 * Measured in the benchmark's cache hit (issue 6): a write per line costs a syscall each;
 * sonic-boom's asynchronous 4 KiB batches (written on the libuv threadpool) cost about 9 µs of CPU
 * per line; one write per turn of the event loop still cost 2–3 µs per line, the few lines of a
 * turn paying for the syscall. sonic-boom still does the writing: partial writes, and EAGAIN on a
 * full pipe, where it waits, as pino's default synchronous destination does. Lines still pending
 * when the process exits are written by the exit handler (`flushSync`). A deferred line is rendered
 * in its place among the others when its batch is written.
 */
export function batched(
  destination: SyncDestination,
  { delayMs = 100, maxChars = 64 * 1024 }: BatchOptions = {},
): BatchedDestination {
  let pending: (string | Deferred)[] = [];
  let chars = 0;
  let timer: NodeJS.Timeout | undefined;
  const writePending = () => {
    if (pending.length === 0) return;
    let lines = '';
    for (const entry of pending) lines += typeof entry === 'string' ? entry : entry.render();
    pending = [];
    chars = 0;
    destination.write(lines);
  };
  const add = (entry: string | Deferred, length: number) => {
    pending.push(entry);
    chars += length;
    if (chars >= maxChars) writePending();
    // A timer that finds the lines already written finds nothing to do; it is not cleared.
    else if (timer === undefined) timer = setTimeout(onTimer, delayMs).unref();
  };
  const onTimer = () => {
    timer = undefined;
    writePending();
  };
  return {
    write(line: string) {
      add(line, line.length);
    },
    writeLater(entry: Deferred) {
      add(entry, DEFERRED_CHARS);
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
  /** How the token was checked: a JWT verified locally, or the provider's introspection (SPEC §9). */
  check: 'jwt' | 'introspection' | null;
  duration_ms: number;
  upstream_ms: number | null;
}

/**
 * Writes the access line (SPEC §6) to the logger's destination, in pino's format, at pino's `info`
 * level: the line a `logger.info(line, 'request')` would write, built by hand. Its fields are
 * fixed and tollgate builds every one of them (no token can be among them, so no redaction
 * applies), and pino's generic serialisation of them was the largest part of the line's cost on a
 * cache hit (issue 6). test/observability/log.test.ts holds it equal to pino's own output.
 *
 * Only the path is escaped: the method is one of Node's parser's (`http.METHODS`), a provider name
 * is `[a-z0-9-]` (the configuration schema), and the outcome, code and cache result are
 * tollgate's own words — none holds a character JSON escapes.
 *
 * On the batched stdout the line's text is made when its batch is written, from the time taken
 * now: the request then only queues the object, and a few hundred lines are formatted together.
 * Measured side by side (`test/bench/ab.ts`), formatting each line as its request ended cost
 * about 5 % of tollgate's CPU per cache hit, and no access log at all saved the same 5 %; made at
 * write time, the line costs within 1 % of no access log. So the line must not change once it is
 * handed over.
 */
export function createAccessLog(logger: Logger): (line: AccessLine) => void {
  // pino's own parts of a line, from its public symbols: where lines go, the time, the bindings.
  const internals = logger as unknown as Record<symbol, unknown>;
  const destination = internals[pino.symbols.streamSym] as DestinationStream & Partial<BatchedDestination>;
  const time = internals[pino.symbols.timeSym] as () => string;
  const head = `{"level":${logger.levels.values.info}`;
  const bindings = internals[pino.symbols.chindingsSym] as string;
  const render = (timeField: string, line: AccessLine) =>
    `${head}${timeField}${bindings},"method":"${line.method}","path":${line.path === null ? 'null' : JSON.stringify(line.path)},` +
    `"route":${line.route},"status":${line.status},"outcome":"${line.outcome}","code":${quoted(line.code)},` +
    `"provider":${quoted(line.provider)},"cache":${quoted(line.cache)},"check":${quoted(line.check)},` +
    `"duration_ms":${line.duration_ms},"upstream_ms":${line.upstream_ms},"msg":"request"}\n`;

  // Deferred only where the time can be made later exactly as pino would have made it now.
  if (destination.writeLater !== undefined && time === isoTime) {
    class PendingLine implements Deferred {
      constructor(
        private readonly at: number,
        private readonly line: AccessLine,
      ) {}
      render(): string {
        return render(isoTimeAt(this.at), this.line);
      }
    }
    return (line) => {
      if (logger.isLevelEnabled('info')) destination.writeLater!(new PendingLine(Date.now(), line));
    };
  }
  return (line) => {
    if (logger.isLevelEnabled('info')) destination.write(render(time(), line));
  };
}

/** A string that needs no escaping, as JSON. */
const quoted = (value: string | null): string => (value === null ? 'null' : `"${value}"`);
