/**
 * SPEC §3.8: requests Node's parser refuses (Content-Length with Transfer-Encoding, two lengths,
 * obs-fold, bare LF…) get a plain 400 and the connection is closed. The parser can refuse bytes
 * that were pipelined behind requests still being answered on the same connection; the 400 then
 * waits for their answers, so it is never read as the answer to a legitimate request and never
 * cuts one short (Node itself would write it at once and destroy the connection).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
/** A client too slow with its headers or body (slowloris, `server.request_timeout_ms`). */
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

export interface ClientErrors {
  /** Counts a request as being answered on its connection until its response closes. */
  track(req: IncomingMessage, res: ServerResponse): void;
  /** The server's `clientError` listener. */
  onClientError(err: NodeJS.ErrnoException, socket: Duplex): void;
}

export function createClientErrors(): ClientErrors {
  const answering = new WeakMap<Duplex, Set<{ req: IncomingMessage; res: ServerResponse }>>();
  const waiting = new WeakMap<Duplex, () => void>();

  return {
    track(req, res) {
      const socket = req.socket;
      let set = answering.get(socket);
      if (set === undefined) answering.set(socket, (set = new Set()));
      const entry = { req, res };
      set.add(entry);
      res.once('close', () => {
        set.delete(entry);
        if (set.size === 0) waiting.get(socket)?.();
      });
    },
    onClientError(err, socket) {
      if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
      const inFlight = [...(answering.get(socket) ?? [])];
      const refuse = () => {
        waiting.delete(socket);
        if (socket.writable) socket.end(err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST);
        else socket.destroy();
      };
      if (inFlight.length === 0) return refuse();
      // The refused bytes are the body of a request being answered: that request is broken, so
      // the connection ends now (its upstream request is aborted with it); a 400 is written only
      // if no answer has started on the connection, so no answer is ever corrupted.
      if (inFlight.some(({ req }) => !req.complete)) {
        if (inFlight.some(({ res }) => res.headersSent)) return void socket.destroy();
        return refuse();
      }
      waiting.set(socket, refuse);
    },
  };
}
