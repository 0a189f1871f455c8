/**
 * SPEC §3.8: requests Node's parser refuses (Content-Length with Transfer-Encoding, two lengths,
 * obs-fold, bare LF…) get a plain 400 and the connection is closed. The parser can refuse bytes
 * that were pipelined behind requests still being answered on the same connection; the 400 then
 * waits for their answers, so it is never read as the answer to a legitimate request and never
 * cuts one short (Node itself would write it at once and destroy the connection).
 */
import type { Duplex } from 'node:stream';
import type { Connections } from '../connections.js';

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
/** A client too slow with its headers or body (slowloris, `server.request_timeout_ms`). */
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** The server's `clientError` listener, answering after the responses in flight on the connection. */
export function createClientErrorHandler(connections: Connections): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  const waiting = new WeakMap<Duplex, () => void>();
  connections.onIdle(({ socket }) => waiting.get(socket)?.());

  return (err, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    const inFlight = connections.of(socket)?.answering ?? [];
    const refuse = () => {
      waiting.delete(socket);
      if (socket.writable) socket.end(err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST);
      else socket.destroy();
    };
    if (inFlight.length === 0) return refuse();
    // The refused bytes are the body of a request being answered: that request is broken, so
    // the connection ends now (its upstream request is aborted with it); a 400 is written only
    // if no answer has started on the connection, so no answer is ever corrupted.
    if (inFlight.some((res) => !res.req.complete)) {
      if (inFlight.some((res) => res.headersSent)) return void socket.destroy();
      return refuse();
    }
    waiting.set(socket, refuse);
  };
}
