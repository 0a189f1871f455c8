/**
 * A provider's error text is logged (it is what an operator acts on), and it is the provider's own
 * free text: whatever it echoes of the request — the token, raw or percent-encoded, tollgate's
 * client secret, its Basic credentials — is masked first. The access-log test drives the same
 * through a provider that echoes (test/observability/logs.test.ts); these pin each form.
 */
import t from 'tap';
import { withoutToken } from '../../src/provider/providers.js';

/** A token with every character that percent-encoding changes in a base64 token. */
const TOKEN = 'ab+cd/ef==';
const SECRET = 'se/cr+et';

t.test('the token, raw and percent-encoded, every copy', async (t) => {
  t.equal(
    withoutToken(`bad ${TOKEN}; again ${TOKEN}; sent ${encodeURIComponent(TOKEN)} twice ${encodeURIComponent(TOKEN)}`, TOKEN),
    'bad [token]; again [token]; sent [token] twice [token]',
  );
  t.equal(encodeURIComponent(TOKEN), 'ab%2Bcd%2Fef%3D%3D', 'the encoded form differs from the token');
});

t.test('a token percent-encoding leaves alone is masked once, as itself', async (t) => {
  t.equal(withoutToken('token abc-123_x.y~z rejected', 'abc-123_x.y~z'), 'token [token] rejected');
});

t.test("tollgate's client secret, raw and percent-encoded", async (t) => {
  t.equal(
    withoutToken(`secret ${SECRET} or ${encodeURIComponent(SECRET)} with ${TOKEN}`, TOKEN, SECRET),
    'secret [secret] or [secret] with [token]',
  );
});

t.test('HTTP Basic credentials, whatever their encoding inside', async (t) => {
  const basic = Buffer.from('tollgate:se%2Fcr%2Bet').toString('base64');
  t.equal(withoutToken(`got Basic ${basic} and basic ${basic}.`, TOKEN), 'got Basic [credentials] and Basic [credentials].');
  t.equal(withoutToken(`spaced Basic   ${basic}`, TOKEN), 'spaced Basic [credentials]', 'however many spaces follow Basic');
});

t.test('text that echoes nothing is unchanged, and an empty token or secret masks nothing', async (t) => {
  const text = 'HTTP 400 invalid_request (the token is malformed)';
  t.equal(withoutToken(text, TOKEN, SECRET), text);
  t.equal(withoutToken(text, '', ''), text);
  t.equal(withoutToken(text, ''), text);
});
