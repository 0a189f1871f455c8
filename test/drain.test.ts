/**
 * src/drain.ts on a real listener, connection by connection over raw sockets, so each case of
 * SPEC §7's "no accepted request is dropped" is set up exactly: a request in flight, an idle
 * keep-alive connection, a connection accepted a moment before the close whose request is still
 * on its way, one that never sends anything, and the timeout. Time moves only when a test moves
 * it (manual timers), so "before the grace is up" and "after the timeout" are exact.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { createDrain } from '../src/drain.js';
import { manualTimers, type ManualTimers } from './helpers/clock.js';
import { withTimeout } from './helpers/tollgate.js';

interface Harness {
  port: number;
  server: Server;
  drain: ReturnType<typeof createDrain>;
  /** The drain's timers: the grace and the timeout fire only when the test advances them. */
  timers: ManualTimers;
  /** Requests the server has received, with a way to answer each. */
  received: { req: IncomingMessage; res: ServerResponse }[];
  /** Resolves at the server's next accepted connection. */
  nextConnection(): Promise<void>;
  /** Resolves when the server has received `n` requests. */
  requests(n: number): Promise<void>;
}

const sockets = new WeakMap<Server, Set<Socket>>();

async function harness(t: Test, answer: 'now' | 'hold'): Promise<Harness> {
  const server = createServer();
  // Far beyond every bounded wait below: a connection ended in time was ended by the drain.
  server.keepAliveTimeout = 60_000;
  // The default grace, as the app uses it: a test that moves time by less than a second is
  // inside it.
  const timers = manualTimers();
  const drain = createDrain(server, { timers });
  const received: Harness['received'] = [];
  const waiters: (() => void)[] = [];
  server.on('request', (req, res) => {
    received.push({ req, res });
    if (answer === 'now') res.writeHead(200, { 'content-length': '2' }).end('ok');
    for (const w of waiters.splice(0)) w();
  });
  let connectionWaiter: (() => void) | undefined;
  const open = new Set<Socket>();
  sockets.set(server, open);
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    connectionWaiter?.();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    drain,
    timers,
    received,
    nextConnection: () =>
      withTimeout(new Promise<void>((resolve) => (connectionWaiter = resolve)), 5000, 'no connection accepted'),
    requests: (n) =>
      withTimeout(
        new Promise<void>((resolve) => {
          const check = () => (received.length >= n ? resolve() : waiters.push(check));
          check();
        }),
        5000,
        `fewer than ${n} requests arrived`,
      ),
  };
}

/** A raw client connection: what it has read, and whether the server ended it. */
function client(port: number) {
  const socket: Socket = connect(port, '127.0.0.1');
  let data = '';
  socket.setEncoding('utf8').on('data', (c: string) => (data += c));
  const ended = new Promise<'end' | 'error'>((resolve) => {
    socket.once('end', () => resolve('end'));
    socket.once('error', () => resolve('error'));
  });
  return {
    socket,
    send: (path: string) => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
    write: (bytes: string) => socket.write(bytes),
    /** The head of the n-th response (1-based), once it is complete. */
    response: (n = 1) =>
      withTimeout(
        new Promise<string>((resolve) => {
          const check = () => {
            const heads = data.split('HTTP/1.1 ').slice(1);
            if (heads.length >= n && heads[n - 1]!.includes('\r\n\r\n'))
              return resolve(`HTTP/1.1 ${heads[n - 1]!.split('\r\n\r\n')[0]}`);
            socket.once('data', check);
          };
          check();
        }),
        5000,
        `no response ${n}`,
      ),
    ended: () => withTimeout(ended, 5000, 'the server did not end the connection'),
    close: () => socket.destroy(),
  };
}

t.test('while draining, every answer says Connection: close', async (t) => {
  const h = await harness(t, 'now');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/before');
  t.match(await c.response(1), /^HTTP\/1\.1 200[\s\S]*Connection: keep-alive/i);
  h.drain.startDraining();
  c.send('/during');
  t.match(await c.response(2), /^HTTP\/1\.1 200[\s\S]*Connection: close/i);
  t.equal(await c.ended(), 'end', 'and then the server ends the connection');
});

t.test('a request in flight at the close finishes, answered with Connection: close', async (t) => {
  const h = await harness(t, 'hold');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/slow');
  await h.requests(1);
  const closed = h.drain.close(5000);
  t.equal(h.drain.inFlight(), 1);
  h.received[0]!.res.writeHead(200, { 'content-length': '2' }).end('ok');
  t.match(await c.response(), /^HTTP\/1\.1 200[\s\S]*Connection: close/i);
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
});

t.test('an idle keep-alive connection is ended at the close, without waiting for keepAliveTimeout', async (t) => {
  const h = await harness(t, 'now');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/a');
  t.match(await c.response(), /Connection: keep-alive/i);
  const closed = h.drain.close(60_000);
  t.equal(await c.ended(), 'end', 'ended politely (FIN), not reset');
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
});

t.test('a keep-alive answer begun before the close ends its connection once done', async (t) => {
  const h = await harness(t, 'hold');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/streaming');
  await h.requests(1);
  const { res } = h.received[0]!;
  res.writeHead(200, { 'content-length': '2' });
  res.flushHeaders();
  t.match(await c.response(), /Connection: keep-alive/i, 'the headers went out before the drain');
  const closed = h.drain.close(60_000);
  res.end('ok');
  t.equal(await c.ended(), 'end', 'ended once the answer is done');
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
});

t.test('a connection accepted just before the close still gets its request served', async (t) => {
  const h = await harness(t, 'now');
  const c = client(h.port);
  t.teardown(c.close);
  await h.nextConnection();
  const closed = h.drain.close(60_000);
  // Its request arrives late in the grace, not in the same tick as the close: a grace of 0 (or
  // one shorter than a second) would have cut the connection by now.
  h.timers.advance(999);
  c.send('/late');
  t.match(await c.response(), /^HTTP\/1\.1 200[\s\S]*Connection: close/i);
  t.equal(await c.ended(), 'end');
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
});

t.test('a connection that never sends a request is ended after the grace, not held until the timeout', async (t) => {
  const h = await harness(t, 'now');
  const c = client(h.port);
  t.teardown(c.close);
  await h.nextConnection();
  const closed = h.drain.close(60_000);
  h.timers.advance(999);
  t.notOk(await settledNow(closed), 'still waiting inside the grace');
  h.timers.advance(1);
  await c.ended();
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 }, 'well before the 60 s timeout');
  t.equal(h.received.length, 0);
});

t.test('the timeout cuts what is still in flight', async (t) => {
  const h = await harness(t, 'hold');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/hung');
  await h.requests(1);
  const closed = h.drain.close(60_000);
  h.timers.advance(59_999);
  t.notOk(await settledNow(closed), 'not cut before the timeout');
  t.equal(h.drain.inFlight(), 1);
  h.timers.advance(1);
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 1 });
  t.ok(['end', 'error'].includes(await c.ended()), 'the connection is gone');
});

t.test('a second close with timeout 0 cuts at once', async (t) => {
  const h = await harness(t, 'hold');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/hung');
  await h.requests(1);
  const first = h.drain.close(60_000);
  const second = h.drain.close(0);
  t.equal(first, second, 'both settle together');
  t.same(await withTimeout(second, 5000, 'close(0) did not settle'), { cut: 1 });
});

t.test('a request still arriving at the close is not cut by the grace: it has until the timeout', async (t) => {
  const h = await harness(t, 'now');
  const c = client(h.port);
  t.teardown(c.close);
  await h.nextConnection();
  c.write('GET /slow-head HTTP/1.1\r\n');
  await waitUntil(() => [...connectionsOf(h)].some((s) => s.bytesRead > 0), 'the partial head never arrived');
  const closed = h.drain.close(60_000);
  h.timers.advance(5_000);
  c.write('Host: x\r\n\r\n');
  t.match(await c.response(), /^HTTP\/1\.1 200[\s\S]*Connection: close/i, 'served after the grace was up');
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
});

t.test('a late first request still in flight when the grace ends is not cut', async (t) => {
  const h = await harness(t, 'hold');
  const c = client(h.port);
  t.teardown(c.close);
  await h.nextConnection();
  const closed = h.drain.close(60_000);
  c.send('/late-and-slow');
  await h.requests(1);
  h.timers.advance(1_000);
  t.equal(h.drain.inFlight(), 1, 'still in flight after the grace');
  h.received[0]!.res.writeHead(200, { 'content-length': '2' }).end('ok');
  t.match(await c.response(), /^HTTP\/1\.1 200/);
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
});

t.test('a connection that goes away during the grace takes its grace timer with it; a settled close sets none', async (t) => {
  const h = await harness(t, 'now');
  const c = client(h.port);
  await h.nextConnection();
  const closed = h.drain.close(60_000);
  t.equal(h.timers.pending(), 2, 'the grace and the timeout');
  c.close();
  t.same(await withTimeout(closed, 5000, 'close did not settle'), { cut: 0 });
  // The listener's close is reported before the server's socket emits its own close.
  await waitUntil(() => connectionsOf(h).size === 0, "the server's socket never closed");
  t.equal(h.timers.pending(), 0, 'no timer left behind');
  t.equal(h.drain.close(60_000), closed, 'a later close is the same close');
  t.equal(h.timers.pending(), 0, 'and sets no timer');
});

t.test('a close after the listener already stopped cuts what is left at once', async (t) => {
  const h = await harness(t, 'hold');
  const c = client(h.port);
  t.teardown(c.close);
  c.send('/hung');
  await h.requests(1);
  h.server.close();
  t.same(await withTimeout(h.drain.close(60_000), 5000, 'close did not settle'), { cut: 1 });
  t.ok(['end', 'error'].includes(await c.ended()), 'the connection is gone');
});

/** The server's sockets, from its connection events (Node keeps no public list). */
function connectionsOf(h: Harness): Set<Socket> {
  return sockets.get(h.server) ?? new Set();
}

async function waitUntil(check: () => boolean, message: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    5000,
    message,
  );
}

/** Whether `p` has settled once the callbacks already queued have run (no time passes). */
async function settledNow(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}
