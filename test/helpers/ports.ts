/**
 * A port from the system that refuses to serve: a listener on 127.0.0.1 port 0 that resets every
 * connection the moment it is accepted. The port stays this test's until its teardown, so no
 * other process can start listening on it meanwhile (a port closed after binding can be taken
 * again at once, and no fixed port such as 9 is sure to be closed). A connection to it fails with
 * a reset instead of ECONNREFUSED: either way nothing answers.
 */
import { createServer } from 'node:net';
import type { Test } from 'tap';

export async function refusingPort(t: Pick<Test, 'teardown'>): Promise<number> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}
