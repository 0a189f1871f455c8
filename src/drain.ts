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
import type { Server } from 'node:http';
import { systemTimers, type Timers } from './clock.js';
import { createConnections, type Connection, type Connections } from './connections.js';

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

export interface DrainOptions {
  /** How long a connection accepted just before the close may send its first request (milliseconds); default 1000. */
  firstRequestGraceMs?: number;
  /** The listener's connection tracking, when the app shares it (proxy/client-error.ts); else its own. */
  connections?: Connections;
  /** Where the grace and the timeout wait; the system's timers unless a test moves time itself. */
  timers?: Timers;
}

export function createDrain(server: Server, options: DrainOptions = {}): Drain {
  const firstRequestGraceMs = options.firstRequestGraceMs ?? FIRST_REQUEST_GRACE_MS;
  const connections = options.connections ?? createConnections(server);
  const timers = options.timers ?? systemTimers;
  let closing = false;
  let cut = 0;
  let closed: Promise<CloseResult> | undefined;
  let finished = false;
  const cancels = new Set<() => void>();

  const endIfIdle = (c: Connection) => {
    if (c.answering.length === 0 && c.served && !c.socket.destroyed) c.socket.end();
  };
  // A response that began before the drain leaves a keep-alive connection behind: once the
  // listener is closing nothing else would end it before keepAliveTimeout.
  connections.onIdle((c) => {
    if (closing) endIfIdle(c);
  });

  const cutAll = () => {
    cut = Math.max(cut, connections.inFlight());
    server.closeAllConnections();
    for (const c of [...connections.all()]) c.socket.destroy();
  };

  const stopAccepting = (done: () => void) => {
    // Stops accepting, ends idle keep-alive connections, and calls back once every connection has ended.
    server.close(() => done());
    for (const c of connections.all()) {
      if (c.served) endIfIdle(c);
      else if (c.socket.bytesRead === 0) {
        const cancel = timers.after(firstRequestGraceMs, () => {
          if (!c.served) c.socket.destroy();
        });
        c.socket.once('close', cancel);
      }
    }
  };

  return {
    startDraining: () => connections.closeAfterResponses(),
    close(timeoutMs) {
      closing = true;
      connections.closeAfterResponses();
      closed ??= new Promise<CloseResult>((resolve) => {
        const done = () => {
          finished = true;
          for (const cancel of cancels) cancel();
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
      else cancels.add(timers.after(timeoutMs, cutAll));
      return closed;
    },
    inFlight: () => connections.inFlight(),
  };
}
