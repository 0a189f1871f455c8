/**
 * Closing an HTTP listener without dropping what it accepted (SPEC §7).
 *
 * While draining, every response carries `Connection: close`, so a keep-alive client opens a new
 * connection for its next request — through the Service, which by then routes elsewhere — instead
 * of reusing one that is about to go away (the only polite way to end an HTTP/1.1 connection).
 *
 * Closing stops accepting and then treats each connection by what it is doing:
 * - a request in flight: it finishes, answered with `Connection: close`;
 * - idle after earlier requests (keep-alive): ended now (Node's server.close() does this), or as
 *   soon as its last response is done — Node would keep it until keepAliveTimeout;
 * - accepted but nothing read yet: its first request is probably on the way, so it gets
 *   `firstRequestGraceMs` to arrive and is then served like any other. Node would keep a silent
 *   one (a preconnect, a health checker's socket) until its headers timeout, holding the whole
 *   shutdown to `timeout_s`;
 * - anything else (a request still arriving, an upgraded tunnel): left until the timeout.
 * When the timeout is up, whatever is left is cut. A connection still in the kernel's accept
 * queue when the listener closes is reset by the kernel, as for any server: the drain delay
 * before closing, while Kubernetes stops sending, is what makes that rare.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** How long a connection accepted just before the close may take to send its first request (milliseconds). */
export const FIRST_REQUEST_GRACE_MS = 1000;

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

interface Connection {
  /** Requests on it whose response has not finished. */
  active: number;
  /** It has carried at least one request. */
  served: boolean;
}

export interface DrainOptions {
  /** How long a connection accepted just before the close may send its first request (milliseconds); default 1000. */
  firstRequestGraceMs?: number;
}

export function createDrain(server: Server, options: DrainOptions = {}): Drain {
  const firstRequestGraceMs = options.firstRequestGraceMs ?? FIRST_REQUEST_GRACE_MS;
  const responses = new Set<ServerResponse>();
  // Every socket, upgraded ones too (they leave the HTTP server's own bookkeeping).
  const connections = new Map<Socket, Connection>();
  let draining = false;
  let closing = false;
  let cut = 0;
  let closed: Promise<CloseResult> | undefined;
  let finished = false;
  const timers = new Set<NodeJS.Timeout>();

  const noKeepAlive = (res: ServerResponse) => {
    // Node then writes `Connection: close` itself and ends the socket after this response.
    if (!res.headersSent) res.shouldKeepAlive = false;
  };

  const endIfIdle = (socket: Socket, c: Connection) => {
    if (c.active === 0 && c.served && !socket.destroyed) socket.end();
  };

  const track = (req: IncomingMessage, res: ServerResponse) => {
    responses.add(res);
    if (draining) noKeepAlive(res);
    const socket = req.socket;
    const c = connections.get(socket);
    if (c) {
      c.active++;
      c.served = true;
    }
    res.once('close', () => {
      responses.delete(res);
      if (!c) return;
      c.active--;
      // A response that began before the drain leaves a keep-alive connection behind: once the
      // listener is closing nothing else would end it before keepAliveTimeout.
      if (closing) endIfIdle(socket, c);
    });
  };
  // Before the app's own listeners: a refusal may be written in the same tick as the request.
  server.prependListener('request', track);
  server.prependListener('checkContinue', track);
  server.on('connection', (socket: Socket) => {
    connections.set(socket, { active: 0, served: false });
    socket.once('close', () => connections.delete(socket));
  });

  const cutAll = () => {
    cut = Math.max(cut, responses.size);
    server.closeAllConnections();
    for (const socket of connections.keys()) socket.destroy();
  };

  const stopAccepting = (done: () => void) => {
    // Stops accepting, ends idle keep-alive connections, and calls back once every connection has ended.
    server.close(() => done());
    for (const [socket, c] of connections) {
      if (c.served) endIfIdle(socket, c);
      else if (socket.bytesRead === 0) {
        const timer = setTimeout(() => {
          if (!c.served) socket.destroy();
        }, firstRequestGraceMs);
        timer.unref();
        socket.once('close', () => clearTimeout(timer));
      }
    }
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
          finished = true;
          for (const timer of timers) clearTimeout(timer);
          resolve({ cut });
        };
        if (!server.listening) {
          cutAll();
          return done();
        }
        stopAccepting(done);
      });
      if (finished) return closed;
      if (timeoutMs <= 0) cutAll();
      else timers.add(setTimeout(cutAll, timeoutMs));
      return closed;
    },
    inFlight: () => responses.size,
  };
}
