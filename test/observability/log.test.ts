/**
 * The access logger skips pino's wildcard redaction for speed (src/observability/log.ts): it must
 * still write the line whole and still censor the top-level secret fields, and the main logger
 * must keep censoring nested ones.
 */
import t from 'tap';
import { createAccessLogger, createLogger } from '../../src/observability/log.js';

t.test('the access logger writes the flat line whole and censors top-level secrets', async (t) => {
  const lines: string[] = [];
  const logger = createLogger({ destination: { write: (l: string) => void lines.push(l) } });
  const access = createAccessLogger(logger);
  access.info({ method: 'GET', path: '/orders', route: null, status: 200, outcome: 'allowed', cache: 'hit' }, 'request');
  access.info({ token: 'secret-1', authorization: 'Bearer secret-2' }, 'request');
  logger.info({ nested: { token: 'secret-3' }, err: { access_token: 'secret-4' } }, 'other');

  const [line, censored, nested] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(line, {
    service: 'tollgate',
    method: 'GET',
    path: '/orders',
    route: null,
    status: 200,
    outcome: 'allowed',
    cache: 'hit',
    msg: 'request',
  });
  t.equal(censored?.token, '[redacted]');
  t.equal(censored?.authorization, '[redacted]');
  t.same(nested?.nested, { token: '[redacted]' });
  t.same(nested?.err, { access_token: '[redacted]' });
  t.notOk(lines.join('').includes('secret-'), 'no secret was written');
});
