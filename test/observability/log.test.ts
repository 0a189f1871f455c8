/**
 * src/observability/log.ts: the access line is built by hand for speed, so it is held equal, byte
 * for byte, to the line pino itself writes for the same fields — whatever the path holds (quotes,
 * backslashes, control characters, lone surrogates, non-ASCII). The main logger must keep
 * censoring secrets, nested ones too.
 */
import { METHODS } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { batched, createAccessLog, createLogger, type AccessLine } from '../../src/observability/log.js';

/** A logger whose lines are kept, with pino's own line for the same fields beside the hand-built one. */
function capture(level = 'info') {
  const lines: string[] = [];
  const logger = createLogger({ level, destination: { write: (l: string) => void lines.push(l) } });
  const access = createAccessLog(logger);
  // The time is pino's too, but two writes may fall in two milliseconds.
  const withoutTime = (l: string) => l.replace(/"time":"[^"]*"/, '"time":"T"');
  return {
    lines,
    both(line: AccessLine): [hand: string, pino: string] {
      access(line);
      logger.info(line, 'request');
      const [hand, viaPino] = lines.splice(-2);
      return [withoutTime(hand!), withoutTime(viaPino!)];
    },
    access,
  };
}

const LINE: AccessLine = {
  method: 'GET',
  path: '/orders',
  route: 0,
  status: 200,
  outcome: 'allowed',
  code: null,
  provider: 'acme',
  cache: 'hit',
  check: 'jwt',
  duration_ms: 0.512,
  upstream_ms: 0.301,
};

t.test('the access line is the line pino writes for the same fields', async (t) => {
  const log = capture();
  const cases: AccessLine[] = [
    LINE,
    {
      ...LINE,
      path: null,
      route: null,
      status: 400,
      outcome: 'bad_request',
      code: 'invalid_request',
      provider: null,
      cache: null,
      upstream_ms: null,
    },
    { ...LINE, path: '/a"b\\c\u0000\u001f\u007f/é/\u2028/\ud800', method: 'M-SEARCH', duration_ms: 12345.678 },
    {
      ...LINE,
      status: 503,
      outcome: 'provider_unavailable',
      code: 'temporarily_unavailable',
      cache: 'stale',
      duration_ms: 0,
      upstream_ms: 0,
    },
  ];
  for (const [i, line] of cases.entries()) {
    const [hand, viaPino] = log.both(line);
    t.equal(hand, viaPino, `case ${i}`); // (not the path itself: U+2028 would break the TAP stream)
    t.same(JSON.parse(hand), { level: 30, time: 'T', service: 'tollgate', ...line, msg: 'request' });
  }
});

t.test('any path, method and provider: the same line as pino', async (t) => {
  const log = capture();
  fc.assert(
    fc.property(
      // Any UTF-16 code unit: control characters and lone surrogates too.
      fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
      // What the line's other strings can hold: a method Node's parser knows, a provider name the
      // configuration schema allows.
      fc.constantFrom(...METHODS),
      fc.option(fc.stringMatching(/^[a-z0-9-]{1,40}$/)),
      fc.double({ min: 0, max: 1e7, noNaN: true }),
      (path, method, provider, ms) => {
        const [hand, viaPino] = log.both({ ...LINE, path, method, provider, duration_ms: ms });
        return hand === viaPino;
      },
    ),
    { seed: 6, numRuns: 500 },
  );
  t.pass('500 generated lines equal');
});

t.test('the access line follows the level: none below info', async (t) => {
  const log = capture('warn');
  log.access(LINE);
  t.same(log.lines, []);
});

t.test('the main logger censors secrets, top-level and nested', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ destination: { write: (l: string) => void lines.push(l) } });
  logger.info({ token: 'secret-1', authorization: 'Bearer secret-2' }, 'request');
  logger.info({ nested: { token: 'secret-3' }, err: { access_token: 'secret-4' } }, 'other');

  const [censored, nested] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(censored?.token, '[redacted]');
  t.equal(censored?.authorization, '[redacted]');
  t.same(nested?.nested, { token: '[redacted]' });
  t.same(nested?.err, { access_token: '[redacted]' });
  t.notOk(lines.join('').includes('secret-'), 'no secret was written');
});

t.test('the time is toISOString to the millisecond, whatever the millisecond', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ destination: { write: (l: string) => void lines.push(l) } });
  const realNow = Date.now;
  t.teardown(() => void (Date.now = realNow));
  // Within one second (the date part is formatted once per second), across seconds, and far away.
  for (const ms of [
    0, 1, 9, 10, 99, 100, 999, 1000, 1764455672001, 1764455672099, 1764455672999, 1764455673000, 253402300799999,
  ]) {
    Date.now = () => ms;
    logger.info('tick');
    t.equal((JSON.parse(lines.pop()!) as { time: string }).time, new Date(ms).toISOString(), `at ${ms}`);
  }
});

/** A destination that records writes and can wait, bounded, for the next one. */
function recorder() {
  const writes: string[] = [];
  const flushed: string[] = [];
  let onWrite: (() => void) | undefined;
  return {
    writes,
    flushed,
    destination: {
      write: (data: string) => {
        writes.push(data);
        onWrite?.();
      },
      flush: (cb?: (err?: Error) => void) => {
        flushed.push('flush');
        cb?.();
      },
      flushSync: () => void flushed.push('flushSync'),
    },
    nextWrite: () =>
      new Promise<void>((resolve, reject) => {
        const guard = setTimeout(() => reject(new Error('no write within 5 s')), 5000);
        onWrite = () => {
          clearTimeout(guard);
          onWrite = undefined;
          resolve();
        };
      }),
  };
}

t.test('lines are written together once enough are pending, at once and in one write', async (t) => {
  const out = recorder();
  const destination = batched(out.destination, { delayMs: 60_000, maxChars: 6 });
  destination.write('a\n');
  destination.write('b\n');
  t.same(out.writes, [], 'nothing written below the size');
  destination.write('c\n');
  t.same(out.writes, ['a\nb\nc\n'], 'one write when the size is reached');
  destination.write('d\n');
  destination.flushSync();
  t.same(out.writes, ['a\nb\nc\n', 'd\n'], 'flushSync writes what is pending');
  destination.write('e\n');
  await new Promise<void>((resolve) => destination.flush(() => resolve()));
  t.same(out.writes, ['a\nb\nc\n', 'd\n', 'e\n'], 'flush too');
  t.same(out.flushed, ['flushSync', 'flush']);
});

t.test('a line waits no longer than the delay, and one write takes what came meanwhile', async (t) => {
  const out = recorder();
  const destination = batched(out.destination, { delayMs: 1, maxChars: 1024 });
  const written = out.nextWrite();
  destination.write('a\n');
  destination.write('b\n');
  t.same(out.writes, [], 'nothing written at once');
  await written;
  t.same(out.writes, ['a\nb\n']);
});

t.test('on a batched destination the access line is made when written: same text, time of the request, in order', async (t) => {
  const out = recorder();
  const batch = batched(out.destination, { delayMs: 60_000, maxChars: 1 << 20 });
  const deferred: unknown[] = [];
  const writeLater = batch.writeLater.bind(batch);
  batch.writeLater = (entry) => {
    deferred.push(entry);
    writeLater(entry);
  };
  const logger = createLogger({ destination: batch });
  const access = createAccessLog(logger);
  const realNow = Date.now;
  t.teardown(() => void (Date.now = realNow));

  Date.now = () => 1764455672042;
  logger.info('before');
  access(LINE);
  logger.info(LINE, 'request'); // pino's own line for the same fields, at the same time
  Date.now = () => 1764455679999; // the batch is written later
  logger.info('after');
  t.equal(deferred.length, 1, 'the access line was queued unformatted');
  batch.flushSync();

  t.equal(out.writes.length, 1, 'one write');
  const lines = out.writes[0]!.split('\n').slice(0, -1);
  t.same(
    lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
    ['before', 'request', 'request', 'after'],
    'in the order written',
  );
  t.equal(lines[1], lines[2], 'the deferred line is the line pino writes');
  t.equal((JSON.parse(lines[1]!) as { time: string }).time, new Date(1764455672042).toISOString(), 'the time of the request');
});
