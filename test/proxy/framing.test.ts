/**
 * src/proxy/framing.ts on its own, with the request as Node hands it over (raw header pairs,
 * parsed headers, whether the body was read): every input is one Node may produce, including the
 * ones its parser rarely lets through, so each branch of the check is pinned whatever Node's
 * parser does first. The same checks over real sockets: test/adversarial/request-smuggling and
 * refused-upload.
 */
import type { IncomingMessage } from 'node:http';
import t from 'tap';
import { renderError, TollgateError } from '../../src/errors.js';
import { checkFraming, mustClose } from '../../src/proxy/framing.js';

/** A request as Node parses it: `raw` in wire order, `headers` lower-cased (last value wins). */
function req(raw: [string, string][], complete = false): IncomingMessage {
  const headers = Object.fromEntries(raw.map(([n, v]) => [n.toLowerCase(), v]));
  return { rawHeaders: raw.flat(), headers, complete } as unknown as IncomingMessage;
}

const refusal = (r: IncomingMessage) => {
  try {
    checkFraming(r);
    return undefined;
  } catch (err) {
    return err as TollgateError;
  }
};

t.test('a Transfer-Encoding whose last coding is not chunked is refused, with no Bearer challenge', async (t) => {
  for (const value of ['identity', 'xchunked', 'gzip', 'chunked, gzip', 'chunked,identity']) {
    const err = refusal(req([['Transfer-Encoding', value]]));
    t.ok(err instanceof TollgateError, value);
    t.equal(err?.code, 'invalid_request', value);
    // A malformed request is not an authentication failure (RFC 6750 §3: no challenge).
    t.equal(err && renderError(err).headers['www-authenticate'], undefined, `${value}: no WWW-Authenticate`);
  }
});

t.test('the last Transfer-Encoding line decides, whatever its spelling', async (t) => {
  t.ok(
    refusal(
      req([
        ['Transfer-Encoding', 'chunked'],
        ['transfer-encoding', 'gzip'],
      ]),
    ),
    'chunked, then gzip: refused',
  );
  t.equal(
    refusal(
      req([
        ['TRANSFER-ENCODING', 'gzip'],
        ['Transfer-Encoding', 'CHUNKED'],
      ]),
    ),
    undefined,
    'gzip, then CHUNKED',
  );
});

t.test('chunked last, after other codings or with spaces around it, is sound', async (t) => {
  for (const value of ['chunked', 'gzip, chunked', 'gzip,chunked', 'gzip ,  chunked', 'Chunked']) {
    t.equal(refusal(req([['Transfer-Encoding', value]])), undefined, value);
  }
});

t.test('other headers are never read as Transfer-Encoding, even one of the same length', async (t) => {
  t.equal('x-forwarded-proto'.length, 'transfer-encoding'.length);
  const headers: [string, string][] = [
    ['Host', 'x'],
    ['X-Forwarded-Proto', 'https'],
    ['Content-Length', '3'],
  ];
  t.equal(refusal(req(headers)), undefined);
  t.equal(
    refusal(
      req([
        ['Transfer-Encoding', 'chunked'],
        ['X-Forwarded-Proto', 'gzip'],
      ]),
    ),
    undefined,
  );
  t.equal(mustClose(req(headers, true)), false);
});

t.test('mustClose: only when a body was left unread or cannot be delimited', async (t) => {
  t.equal(mustClose(req([['Host', 'x']])), false, 'no body declared');
  t.equal(mustClose(req([['Content-Length', '0']])), false, 'an empty body');
  t.equal(mustClose(req([['Content-Length', '10']])), true, 'a body not read yet');
  t.equal(mustClose(req([['Content-Length', '10']], true)), false, 'a body read to its end');
  t.equal(mustClose(req([['Transfer-Encoding', 'chunked']])), true, 'a chunked body not read yet');
  t.equal(mustClose(req([['Transfer-Encoding', 'chunked']], true)), false, 'a chunked body read to its end');
  t.equal(mustClose(req([['Transfer-Encoding', 'identity']])), true, 'unsound framing');
  t.equal(mustClose(req([['Transfer-Encoding', 'identity']], true)), true, 'unsound framing, even once Node calls it complete');
});
