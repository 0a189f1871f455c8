/**
 * SPEC §3.8: a WebSocket (or any `Upgrade`) request is authorised by the same pipeline as every
 * request, then tunnelled to the upstream. A refusal is a plain SPEC §4 answer on the raw socket
 * (never a `101`); an authorised upgrade opens its own connection to the upstream (an upgraded
 * connection can never return to a keep-alive pool), carries tollgate's identity headers, and
 * relays the upstream's `101` and then bytes both ways until either side closes.
 */
import { request as httpRequest, STATUS_CODES, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { TollgateError } from '../errors.js';
import type { ForwardResult } from './forward.js';
import type { Decision, Pipeline } from './handler.js';
import { responseHeaders } from './headers.js';
import type { Reply } from './resource-metadata.js';

export interface UpgradeOptions {
  /** The upstream's base URL (its path prefixes every forwarded path, as for plain requests). */
  url: string;
  /** Until the upstream answers the upgrade (milliseconds): `upstream.timeout_ms`. */
  timeoutMs: number;
}

export interface Upgrades {
  /** The server's `upgrade` listener. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Cuts every open tunnel: an upgraded connection never drains by itself (used at shutdown). */
  closeAll(): void;
}

export function createUpgrades(run: Pipeline, options: UpgradeOptions): Upgrades {
  const base = new URL(options.url);
  const prefix = base.pathname === '/' ? '' : base.pathname.replace(/\/$/, '');
  const send = base.protocol === 'https:' ? httpsRequest : httpRequest;
  const open = new Set<Duplex>();
  const track = (socket: Duplex) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    // A reset on either side ends the tunnel; it must never become an uncaught exception.
    socket.on('error', () => socket.destroy());
  };

  const tunnel = (req: IncomingMessage, client: Duplex, head: Buffer, decision: Decision) =>
    new Promise<ForwardResult>((resolve, reject) => {
      const started = performance.now();
      const headers = [...decision.headers, 'connection', 'upgrade', 'upgrade', req.headers.upgrade ?? ''];
      if (!decision.headers.some((h, i) => i % 2 === 0 && h === 'host')) headers.push('host', base.host);
      let timedOut = false;
      const outgoing = send({
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: base.port,
        method: req.method,
        path: prefix + decision.path,
        headers,
        setHost: false,
        agent: false,
      });
      const timer = setTimeout(() => {
        timedOut = true;
        outgoing.destroy();
      }, options.timeoutMs);
      const clientGone = () => outgoing.destroy();
      client.once('close', clientGone);
      const answered = () => {
        clearTimeout(timer);
        client.off('close', clientGone);
        return performance.now() - started;
      };

      outgoing.on('upgrade', (res, upstream, upstreamHead) => {
        const upstreamMs = answered();
        track(upstream);
        client.write(Buffer.from(head101(res), 'latin1'));
        if (upstreamHead.length > 0) client.write(upstreamHead);
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
        upstream.once('close', () => client.destroy());
        client.once('close', () => upstream.destroy());
        resolve({ status: res.statusCode ?? 101, upstreamMs });
      });
      // The upstream declined to switch protocols: its answer is relayed, then the connection closes.
      outgoing.on('response', (res) => {
        const upstreamMs = answered();
        if (res.statusCode === 431) {
          // As for plain requests (forward.ts): the refused head is tollgate's, not the client's.
          res.resume();
          return reject(new TollgateError('bad_gateway', 'the upstream refused the request tollgate sent'));
        }
        const relayed = { ...responseHeaders(res.headers), connection: 'close' };
        client.write(Buffer.from(responseHead(res.statusCode ?? 502, Object.entries(relayed)), 'latin1'));
        res.pipe(client);
        res.once('error', () => client.destroy());
        resolve({ status: res.statusCode ?? 502, upstreamMs });
      });
      outgoing.on('error', (err) => {
        answered();
        reject(
          timedOut
            ? new TollgateError('gateway_timeout', 'the upstream did not answer in time', { cause: err })
            : new TollgateError('bad_gateway', 'the upstream could not be reached', { cause: err }),
        );
      });
      outgoing.end();
    });

  return {
    handle(req, socket, head) {
      track(socket);
      return run(req, {
        forward: (decision, done) => void tunnel(req, socket, head, decision).then(done, done),
        respond({ status, headers, body }: Reply) {
          if (!socket.writable) return void socket.destroy();
          socket.end(responseHead(status, Object.entries({ ...headers, connection: 'close' })) + body);
        },
      });
    },
    closeAll() {
      for (const socket of open) socket.destroy();
    },
  };
}

/** The upstream's `101` with its headers as received (Sec-WebSocket-Accept and all). */
function head101(res: IncomingMessage): string {
  const pairs: [string, string][] = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i]!, res.rawHeaders[i + 1]!]);
  return responseHead(res.statusCode ?? 101, pairs);
}

function responseHead(status: number, headers: Iterable<[string, string | string[]]>): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of headers) {
    for (const v of Array.isArray(value) ? value : [value]) text += `${name}: ${v}\r\n`;
  }
  return `${text}\r\n`;
}
