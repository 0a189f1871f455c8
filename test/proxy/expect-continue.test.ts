/**
 * SPEC §3.8: a request with `Expect: 100-continue` gets its `100 Continue` only once it is
 * authorised, so a refused client never sends its body. Driven over a raw socket, reading the
 * interim answer before deciding to send the body, as curl does.
 */
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const fake = await startFakeProvider();
const upstream = await startUpstream();
t.teardown(async () => {
  await Promise.all([fake.close(), upstream.close()]);
});
fake.answer((token) => (token === 'good-token' ? { active: true, sub: 'alice' } : { active: false }));
const gate = await startTollgate(t, { upstream: { url: upstream.url }, providers: [providerEntry('fake', fake.issuer)] });

/** Reads from the socket until `done(text)` holds or the socket ends; bounded by 10 s. */
function readUntil(socket: Socket, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = () => {
      cleanup();
      resolve(text);
    };
    const onData = (c: Buffer) => {
      text += c.toString('latin1');
      if (done(text)) finish();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no complete answer within 10 s; got ${JSON.stringify(text)}`));
    }, 10_000);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', finish);
      socket.off('error', reject);
    };
    socket.on('data', onData);
    socket.on('end', finish);
    socket.on('error', reject);
  });
}

async function open(): Promise<Socket> {
  const { hostname, port } = new URL(gate.url);
  const socket = connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  t.teardown(() => {
    socket.destroy();
  });
  return socket;
}

const head = (token: string | undefined) =>
  [
    'POST /orders HTTP/1.1',
    'Host: api.example',
    'Content-Type: text/plain',
    'Content-Length: 11',
    'Expect: 100-continue',
    ...(token === undefined ? [] : [`Authorization: Bearer ${token}`]),
    '',
    '',
  ].join('\r\n');

t.test('an authorised request gets 100 Continue, then its body is forwarded', async (t) => {
  const socket = await open();
  socket.write(head('good-token'));
  const interim = await readUntil(socket, (s) => s.includes('\r\n\r\n'));
  t.match(interim, /^HTTP\/1\.1 100 Continue\r\n/);
  const before = upstream.requests.length;
  socket.write('hello world');
  const final = await readUntil(socket, (s) => s.includes('{"ok":true}'));
  t.match(final, /HTTP\/1\.1 200 OK/);
  t.equal(upstream.requests.length, before + 1);
  const seen = upstream.requests[upstream.requests.length - 1]!;
  t.equal(seen.body.toString(), 'hello world');
  t.equal(seen.headers.expect, undefined, 'Expect is answered here, not forwarded');
});

t.test('a refused request gets its refusal without 100 Continue, and the connection closes', async (t) => {
  for (const token of [undefined, 'bad-token']) {
    const socket = await open();
    const before = upstream.requests.length;
    socket.write(head(token));
    const answer = await readUntil(socket, () => false); // until the server closes
    t.notMatch(answer, /100 Continue/, 'no 100 Continue');
    t.match(answer, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    t.match(answer, /\r\nconnection: close\r\n/i, 'the connection is not reused: the body was never sent');
    t.equal(upstream.requests.length, before, 'nothing forwarded');
  }
});
