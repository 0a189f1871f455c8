/**
 * The proxy listener's connections and the responses in flight on each: what the drain (SPEC §7)
 * and the parser-refusal path (proxy/client-error.ts) both need to know.
 *
 * It runs on every request, so it keeps no collection of requests: the state lives on the
 * connection (one small object per socket, found through a symbol), a request costs a push, a
 * counter and one shared `close` listener. Keeping Sets and a WeakMap of every request/response
 * pair cost the benchmark's cache hit about a sixth of tollgate's CPU time per request (issue 6).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface Connection {
  readonly socket: Socket;
  /** Responses on it not yet closed, in the order the requests came (pipelining keeps it). */
  readonly answering: ServerResponse[];
  /** It has carried at least one request. */
  served: boolean;
}

export interface Connections {
  /** Every open connection of the listener, upgraded ones too (they leave the HTTP server's own bookkeeping). */
  all(): IterableIterator<Connection>;
  /** The connection of a socket, while it is open. */
  of(socket: Duplex): Connection | undefined;
  /** Responses that have not closed, on every connection. */
  inFlight(): number;
  /** From now on every response that has not started carries `Connection: close`, and Node ends its connection after it. */
  closeAfterResponses(): void;
  /** Calls `listener` each time a connection's last response in flight closes. */
  onIdle(listener: (connection: Connection) => void): void;
}

const kConnection = Symbol('tollgate.connection');

interface Tracked {
  [kConnection]?: Connection;
}

/** The listener's own request handlers, when the tracking calls them (`createConnections`). */
export interface RequestHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  checkContinue(req: IncomingMessage, res: ServerResponse): void;
}

/**
 * Tracks the connections of `server`. With `handlers`, it registers the server's one `request` and
 * `checkContinue` listener, which tracks a request and then hands it over: an event with two
 * listeners costs a copy of its listener list at every emit, and one listener measured about 1 %
 * less CPU per cache hit (issue 6). Without, it adds a listener of its own before any other.
 */
export function createConnections(server: Server, handlers?: RequestHandlers): Connections {
  const open = new Set<Connection>();
  const idleListeners: ((connection: Connection) => void)[] = [];
  let inFlight = 0;
  let closeAfter = false;

  const noKeepAlive = (res: ServerResponse) => {
    // Node then writes `Connection: close` itself and ends the socket after this response.
    if (!res.headersSent) res.shouldKeepAlive = false;
  };

  // One function for every response: `this` is the response, its connection is on it.
  function responseClosed(this: ServerResponse & Tracked) {
    const connection = this[kConnection]!;
    const answering = connection.answering;
    // Nearly always the first (or only) one: responses on a connection close in order.
    const at = answering[0] === this ? 0 : answering.indexOf(this);
    if (at === -1) return;
    answering.splice(at, 1);
    inFlight--;
    if (answering.length === 0) for (const listener of idleListeners) listener(connection);
  }

  const track = (req: IncomingMessage, res: ServerResponse & Tracked) => {
    const connection = (req.socket as Socket & Tracked)[kConnection];
    if (connection === undefined) return; // a socket the listener did not accept (a test's fake)
    res[kConnection] = connection;
    connection.answering.push(res);
    connection.served = true;
    inFlight++;
    if (closeAfter) noKeepAlive(res);
    res.on('close', responseClosed);
  };
  // Tracked before it is handled: a refusal may be written in the same tick as the request.
  for (const event of ['request', 'checkContinue'] as const) {
    const handle = handlers?.[event];
    if (handle === undefined) server.prependListener(event, track);
    else
      server.on(event, (req: IncomingMessage, res: ServerResponse) => {
        track(req, res);
        handle(req, res);
      });
  }
  server.on('connection', (socket: Socket & Tracked) => {
    const connection: Connection = { socket, answering: [], served: false };
    socket[kConnection] = connection;
    open.add(connection);
    socket.once('close', () => {
      open.delete(connection);
      socket[kConnection] = undefined;
    });
  });

  return {
    all: () => open.values(),
    of: (socket) => (socket as Duplex & Tracked)[kConnection],
    inFlight: () => inFlight,
    closeAfterResponses() {
      closeAfter = true;
      for (const connection of open) connection.answering.forEach(noKeepAlive);
    },
    onIdle(listener) {
      idleListeners.push(listener);
    },
  };
}
