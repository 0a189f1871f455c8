/**
 * HTTP/1.1 over a raw TCP socket, for the requests a well-behaved client library refuses to send
 * (smuggling shapes, odd targets, duplicated or mis-spelt headers): the bytes go out exactly as
 * written, and the answers are parsed from what comes back.
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  /** Lower-cased names; repeated headers keep every value. */
  headers: Record<string, string[]>;
  body: string;
}

export interface RawExchange {
  /** Every complete response, interim ones (`100 Continue`, `101`) included, in order. */
  responses: RawResponse[];
  /** Whether the server closed the connection. */
  closed: boolean;
  /** Everything received, as latin1 text. */
  raw: string;
}

export interface RawOptions {
  /** Resolve once this many responses (interim ones included) have arrived; default: on close. */
  responses?: number;
  /** Default 10 s: the exchange fails with a clear message instead of hanging the test. */
  timeoutMs?: number;
  /** Keep the socket open after the bytes are written (default true: `end()` would half-close). */
  keepOpen?: boolean;
}

/** Writes `bytes` to tollgate at `url` and collects the answers. */
export function rawRequest(url: string, bytes: string | Buffer, options: RawOptions = {}): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  if (options.keepOpen === false) socket.end();
  return collect(socket, options);
}

/** Collects responses from an open socket (see rawRequest); the socket is destroyed at the end. */
export function collect(socket: Socket, options: RawOptions = {}): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    let received = '';
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ responses: parseResponses(received, closed), closed, raw: received });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw exchange timed out; received so far: ${JSON.stringify(received.slice(0, 500))}`));
    }, options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (options.responses !== undefined && parseResponses(received, false).length >= options.responses) finish();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
  });
}

/** Parses consecutive HTTP/1.1 responses; an incomplete last one is left out unless `eof`. */
export function parseResponses(text: string, eof: boolean): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const lines = text.slice(at, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
    const headers: Record<string, string[]> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      (headers[line.slice(0, colon).trim().toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
    }
    let bodyStart = end + 4;
    let body = '';
    if ((status >= 100 && status < 200) || status === 204 || status === 304) {
      // no body
    } else if (headers['content-length']) {
      const length = Number(headers['content-length'][0]);
      if (text.length < bodyStart + length) break;
      body = text.slice(bodyStart, bodyStart + length);
      bodyStart += length;
    } else if (headers['transfer-encoding']?.[0]?.toLowerCase() === 'chunked') {
      let pos = bodyStart;
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf('\r\n', pos);
        if (lineEnd === -1) break;
        const size = parseInt(text.slice(pos, lineEnd), 16);
        if (size === 0) {
          const trailerEnd = text.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd === -1) break;
          pos = trailerEnd + 4;
          complete = true;
          break;
        }
        if (text.length < lineEnd + 2 + size + 2) break;
        body += text.slice(lineEnd + 2, lineEnd + 2 + size);
        pos = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      bodyStart = pos;
    } else {
      if (!eof) break;
      body = text.slice(bodyStart);
      bodyStart = text.length;
    }
    out.push({ status, headers, body });
    at = bodyStart;
    if (status === 101) break;
  }
  return out;
}

/** One request's head in wire form; `headers` are written in order, exactly as given. */
export function head(requestLine: string, headers: readonly (readonly [string, string])[]): string {
  return `${requestLine}\r\n${headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
}
