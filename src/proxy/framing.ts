/**
 * The request's framing, where Node's parser leaves a decision to us. Node refuses Content-Length
 * with Transfer-Encoding, two lengths and obs-fold itself (SPEC §3.8), but it dispatches a request
 * whose Transfer-Encoding does not end in `chunked` (`identity`, `xchunked`) as if it had no body,
 * and then reads what follows as the next request: the classic smuggling shape.
 */
import type { IncomingMessage } from 'node:http';
import { TollgateError } from '../errors.js';

/**
 * RFC 9112 §6.3: a request whose Transfer-Encoding does not end in `chunked` has no knowable
 * length; the server must answer 400 and close the connection (see `mustClose`).
 */
export function checkFraming(req: IncomingMessage): void {
  if (!hasUnsoundFraming(req)) return;
  throw new TollgateError('invalid_request', 'the request body has no knowable length', { challenge: false });
}

function hasUnsoundFraming(req: IncomingMessage): boolean {
  const raw = req.rawHeaders;
  let last: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 17 || raw[i]!.toLowerCase() !== 'transfer-encoding') continue;
    const codings = raw[i + 1]!.split(',');
    last = codings[codings.length - 1]!.trim().toLowerCase();
  }
  return last !== undefined && last !== 'chunked';
}

/**
 * Whether a refused request's connection must close after the answer: its body was never read
 * (refused requests are not drained, so an attacker's upload costs nothing and its bytes are never
 * parsed as a next request), or its framing is unsound.
 */
export function mustClose(req: IncomingMessage): boolean {
  if (hasUnsoundFraming(req)) return true;
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
