/**
 * The API behind tollgate in tests: it records every request that reaches it (so a test can
 * assert that nothing of a refused request did) and answers 200 with a small JSON body, or as the
 * test's handler says.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  /** Lower-cased names; repeated headers keep every value. */
  headers: Record<string, string[]>;
  rawHeaders: string[];
  body: Buffer;
  /** Trailer fields of a chunked body, lower-cased names. */
  trailers: Record<string, string>;
  /** True for a WebSocket upgrade (answered 101; its frames are echoed). */
  upgrade?: boolean;
}

export interface UpstreamOptions {
  /** Node's limit on the request head (bytes); Node's default 16 KiB when absent. */
  maxHeaderSize?: number;
  /**
   * Accept WebSocket upgrades: answer 101 and echo every text message back prefixed with
   * `echo:`; the text messages received are kept in `messages`.
   */
  websocket?: boolean;
  /** Keep every request (default true); benchmarks only count them. */
  record?: boolean;
}

export interface RecordingUpstream {
  readonly url: string;
  readonly requests: Recorded[];
  /** Text messages received over WebSocket tunnels. */
  readonly messages: string[];
  /** The one request received; fails the test's expectation if there were more or none. */
  single(): Recorded;
  /** Replaces the answer (default: 200 `{"ok":true}`). */
  handle(fn: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): void;
  close(): Promise<void>;
}

export async function startUpstream(options: UpstreamOptions = {}): Promise<RecordingUpstream> {
  const requests: Recorded[] = [];
  const messages: string[] = [];
  type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
  let handler: Handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  };
  const record = (req: IncomingMessage, body: Buffer, upgrade?: boolean) => {
    const headers: Record<string, string[]> = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!.toLowerCase();
      (headers[name] ??= []).push(req.rawHeaders[i + 1]!);
    }
    const trailers = { ...req.trailers } as Record<string, string>;
    requests.push({
      method: req.method!,
      url: req.url!,
      headers,
      rawHeaders: req.rawHeaders,
      body,
      trailers,
      ...(upgrade ? { upgrade } : {}),
    });
  };
  const server = createServer(options.maxHeaderSize ? { maxHeaderSize: options.maxHeaderSize } : {}, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (options.record !== false) record(req, body);
      handler(req, res, body);
    });
  });
  const sockets = new Set<Socket>();
  if (options.websocket) {
    server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      record(req, Buffer.alloc(0), true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      echoFrames(socket, (text) => {
        messages.push(text);
        return `echo:${text}`;
      });
    });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    messages,
    single() {
      if (requests.length !== 1) throw new Error(`expected exactly one request upstream, got ${requests.length}`);
      return requests[0]!;
    },
    handle(fn) {
      handler = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The smallest WebSocket server side a test needs (RFC 6455 §5): unmasks the client's text
 * frames (single-frame messages up to 64 KiB), answers each with an unmasked text frame, answers
 * a close with a close.
 */
function echoFrames(socket: Socket, answer: (text: string) => string): void {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (buffered.length < 2) return;
      const opcode = buffered[0]! & 0x0f;
      let length = buffered[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      }
      const masked = (buffered[1]! & 0x80) !== 0;
      const mask = masked ? buffered.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      if (buffered.length < offset + length) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + length));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      buffered = buffered.subarray(offset + length);
      if (opcode === 0x8) {
        socket.end(Buffer.from([0x88, 0]));
        return;
      }
      if (opcode === 0x1) socket.write(frame(answer(payload.toString('utf8'))));
    }
  });
}

function frame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const head =
    payload.length < 126
      ? Buffer.from([0x81, payload.length])
      : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}
