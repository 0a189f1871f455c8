/**
 * Every way a provider can fail (SPEC §3.4, §4) is answered 503 temporarily_unavailable with
 * Retry-After, within the provider's deadline (300 ms for the slow faults, 2 s for the rest; the
 * test client gives up after 5 s, so a hang fails the test), with nothing forwarded upstream, the failure counted as
 * result="error", and a log line that names the provider and says what went wrong — never the
 * token. The fake provider plays each fault; only loopback addresses are used (the DNS case is a
 * `.invalid` name, which tollgate fails locally, RFC 6761 §6.4).
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { json, startFakeProvider, type Script } from '../helpers/fake-provider.js';
import { assertRefusal, bearer } from '../helpers/http.js';
import { providerEntry, startTollgate } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const TOKEN = 'fault-test-token-7f3a9c';
/** The deadline of the faults that are about time; the others get the default 2 s, so a busy machine cannot turn them into timeouts. */
const DEADLINE_MS = 300;

interface Fault {
  /** What the provider does (the fake provider's script), or an endpoint that fails on its own. */
  script?: Script;
  endpoint?: (t: Test) => Promise<{ issuer: string; endpoint: string; extra?: Record<string, unknown> }>;
  /** The provider's timeout_ms (default 2000). */
  timeoutMs?: number;
  /** What the log line's `cause` must say. */
  cause: RegExp;
  /** Log level and message (default warn, "introspection failed"). */
  level?: number;
  msg?: string;
  check?: (t: Test) => void | Promise<void>;
}

/** Until the answer may be written to again, or is gone; leaves no listener behind. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.once('drain', done).once('close', done);
  });
}

/** Bytes the 10 MB answer got out before tollgate hung up, and whether it was all sent. */
const big = { written: 0, finished: false };
/** HTTP requests that reached the untrusted TLS server. */
let tlsRequests = 0;
/** Calls that arrived at the redirect's target. */
let redirected = 0;

const faults: Record<string, Fault> = {
  'HTTP 500': {
    script: (_t, _r, res) => json(res, 500, { error: 'server_error' }),
    cause: /HTTP status 500: the provider failed/,
  },
  '401 to our credentials (a configuration error)': {
    script: (_t, _r, res) => json(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' }),
    cause: /HTTP 401 invalid_client.*rejected tollgate's client credentials; check client_id and the secret/,
    level: 50,
    msg: 'introspection failed: configuration error',
  },
  // Issue 18, failure 4: Glewlwyd's answer to bad credentials was logged as "unexpected response content-type".
  '401 with an empty body and no Content-Type (Glewlwyd)': {
    script: (_t, _r, res) => void res.writeHead(401).end(),
    cause: /^unexpected HTTP status 401: the provider rejected tollgate's client credentials; check client_id and the secret$/,
    level: 50,
    msg: 'introspection failed: configuration error',
  },
  '404 with an HTML page': {
    script: (_t, _r, res) => void res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'),
    cause: /^unexpected HTTP status 404: check the introspection endpoint/,
  },
  'no answer past the deadline': {
    script: () => {}, // never answers
    timeoutMs: DEADLINE_MS,
    cause: new RegExp(`no complete answer within ${DEADLINE_MS} ms`),
  },
  'hangs after the headers (slow body)': {
    script: (_t, _r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"active":');
    },
    timeoutMs: DEADLINE_MS,
    cause: new RegExp(`no complete answer within ${DEADLINE_MS} ms`),
  },
  'invalid JSON': {
    script: (_t, _r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"active": true,');
    },
    cause: /failed to parse "response" body as JSON/,
  },
  '"active": "true" (not a boolean)': {
    script: (_t, _r, res) => json(res, 200, { active: 'true', sub: 'x' }),
    cause: /"active" property must be a boolean/,
  },
  'a 10 MB answer (cut at 64 KiB)': {
    script: async (_t, _r, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      res.write('{"active":true,"pad":"');
      while (big.written < 10 * 1024 * 1024 && !res.destroyed) {
        big.written += chunk.length;
        if (!res.write(chunk)) await drainedOrClosed(res);
      }
      if (!res.destroyed) res.end('"}', () => (big.finished = true));
    },
    cause: /answer larger than 65536 bytes/,
    check(t) {
      t.notOk(big.finished, `tollgate hung up before the 10 MB were sent (${big.written} bytes got out)`);
    },
  },
  'a redirect (not followed)': {
    script: (_t, req: IncomingMessage, res: ServerResponse) => {
      if (req.url?.includes('redirected')) {
        redirected++;
        return json(res, 200, { active: true, sub: 'attacker' });
      }
      res.writeHead(307, { location: '/introspect?redirected=1' }).end();
    },
    cause: /307/,
    check(t) {
      t.equal(redirected, 0, 'the redirect target was never called');
    },
  },
  'connection refused': {
    async endpoint() {
      const closed = createHttpServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
      const { port } = closed.address() as AddressInfo;
      await new Promise((r) => closed.close(r));
      return { issuer: `http://127.0.0.1:${port}`, endpoint: `http://127.0.0.1:${port}/introspect` };
    },
    cause: /^fetch failed \(ECONNREFUSED\)$/,
  },
  'DNS failure (.invalid, resolved locally)': {
    async endpoint() {
      const host = 'provider.tollgate-test.invalid';
      return { issuer: `http://${host}`, endpoint: `http://${host}/introspect`, extra: { allow_http: true } };
    },
    cause: /^fetch failed \(ENOTFOUND\)$/,
  },
  'TLS failure (self-signed certificate)': {
    async endpoint(t) {
      const dir = mkdtempSync(join(tmpdir(), 'tollgate-tls-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      // A certificate valid for 127.0.0.1 that nobody trusts: only the chain is wrong.
      const key = join(dir, 'key.pem');
      const cert = join(dir, 'cert.pem');
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1'].concat([
          '-keyout',
          key,
          '-out',
          cert,
          '-subj',
          '/CN=127.0.0.1',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
        ]),
        { stdio: 'ignore' },
      );
      const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
        tlsRequests++;
        json(res, 200, { active: true, sub: 'impostor' });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      t.teardown(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
      const { port } = server.address() as AddressInfo;
      return { issuer: `https://127.0.0.1:${port}`, endpoint: `https://127.0.0.1:${port}/introspect` };
    },
    cause: /^fetch failed \(\w*SELF_SIGNED_CERT\w*\): the provider.s TLS certificate is not trusted/,
    check(t) {
      t.equal(tlsRequests, 0, 'no HTTP request got past the handshake');
    },
  },
};

t.test('each provider fault: 503 within the deadline, counted, logged with the provider named', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  for (const [name, fault] of Object.entries(faults)) {
    t.test(name, async (t) => {
      let issuer: string;
      let endpoint: string;
      let extra: Record<string, unknown> = {};
      if (fault.script) {
        const provider = await startFakeProvider();
        t.teardown(() => provider.close());
        provider.script(fault.script);
        issuer = provider.issuer;
        endpoint = provider.introspectionEndpoint;
      } else {
        ({ issuer, endpoint, extra = {} } = await fault.endpoint!(t));
      }
      const gate = await startTollgate(t, {
        upstream: { url: upstream.url },
        providers: [
          providerEntry('acme', issuer, { introspection_endpoint: endpoint, timeout_ms: fault.timeoutMs ?? 2000, ...extra }),
        ],
      });
      const res = await gate.request('/orders', { headers: bearer(TOKEN), timeoutMs: 5000 });
      assertRefusal(t, res, 503, 'temporarily_unavailable');
      t.notMatch(res.text + JSON.stringify(res.headers), TOKEN, 'the answer never carries the token');
      t.equal(upstream.requests.length, 0, 'nothing reached the upstream');
      t.equal(await gate.metric('tollgate_introspection_requests_total', { provider: 'acme', result: 'error' }), 1);
      const line = gate.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('introspection failed'));
      t.match(line, { provider: 'acme', level: fault.level ?? 40, msg: fault.msg ?? 'introspection failed', cause: fault.cause });
      t.notMatch(gate.rawLogs(), TOKEN, 'the token is never logged');
      await fault.check?.(t);
    });
  }
});
