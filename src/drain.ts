/**
 * Closing an HTTP listener without dropping what it accepted (SPEC §7).
 *
 * While draining, every response carries `Connection: close`, so a keep-alive client opens a new
 * connection for its next request — through the Service, which by then routes elsewhere — instead
 * of reusing one that is about to go away (the only polite way to end an HTTP/1.1 connection).
 * Closing stops accepting, ends idle connections, lets in-flight requests finish, and cuts
 * whatever is left when the time is up. An idle keep-alive connection can still race a client's
 * next request at the instant it is closed; the drain delay before closing is what makes that
 * rare, as Kubernetes stops sending new requests meanwhile.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface Drain {
  /** From now on every response that has not started yet carries `Connection: close`. */
  startDraining(): void;
  /**
   * Stops accepting connections and waits for in-flight requests for up to `timeoutMs`
   * (milliseconds), then cuts every connection left (upgraded ones too). A later call with a
   * shorter timeout cuts sooner (a second SIGTERM: 0). Settles once every connection has ended.
   */
  close(timeoutMs: number): Promise<CloseResult>;
  /** Requests whose response has not finished. */
  inFlight(): number;
}

export interface CloseResult {
  /** Requests still in flight when the timeout cut them (0 for a clean close). */
  readonly cut: number;
}

export function createDrain(server: Server): Drain {
  const responses = new Set<ServerResponse>();
  // Upgraded (WebSocket) sockets leave the HTTP server's own bookkeeping, so a cut has to know them.
  const sockets = new Set<Socket>();
  let draining = false;
  let closing = false;
  let cut = 0;
  let closed: Promise<CloseResult> | undefined;
  const timers = new Set<NodeJS.Timeout>();

  const noKeepAlive = (res: ServerResponse) => {
    // Node then writes `Connection: close` itself and ends the socket after this response.
    if (!res.headersSent) res.shouldKeepAlive = false;
  };

  const track = (_req: IncomingMessage, res: ServerResponse) => {
    responses.add(res);
    if (draining) noKeepAlive(res);
    res.once('close', () => {
      responses.delete(res);
      // A response that began before the drain leaves a keep-alive connection behind: once the
      // listener is closing nothing else will end it before keepAliveTimeout.
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
  };
  // Before the app's own listeners: a refusal may be written in the same tick as the request.
  server.prependListener('request', track);
  server.prependListener('checkContinue', track);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const cutAll = () => {
    cut = Math.max(cut, responses.size);
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  };

  return {
    startDraining() {
      draining = true;
      for (const res of responses) noKeepAlive(res);
    },
    close(timeoutMs) {
      draining = true;
      closing = true;
      for (const res of responses) noKeepAlive(res);
      closed ??= new Promise<CloseResult>((resolve) => {
        const done = () => {
          for (const timer of timers) clearTimeout(timer);
          resolve({ cut });
        };
        if (!server.listening) {
          cutAll();
          return done();
        }
        // Node's close() also ends the connections that are idle right now.
        server.close(done);
      });
      if (timeoutMs <= 0) cutAll();
      else timers.add(setTimeout(cutAll, timeoutMs));
      return closed;
    },
    inFlight: () => responses.size,
  };
}
