/**
 * The one error table (src/errors.ts) renders every refusal as SPEC §4 says, and the documented
 * table agrees with it: README.md's `## Errors` table once it has one, SPEC §4's until then. A code
 * whose status or challenge drifts from the docs fails here.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ERRORS, renderError, TollgateError, type ErrorCode } from '../src/errors.js';

const CODES = Object.keys(ERRORS) as ErrorCode[];
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

t.test('renderError, for every code', async (t) => {
  const expected: Record<ErrorCode, { status: number; challenge: 'bare' | 'error' | 'none'; outcome: string }> = {
    missing_token: { status: 401, challenge: 'bare', outcome: 'unauthenticated' },
    invalid_request: { status: 400, challenge: 'error', outcome: 'bad_request' },
    invalid_token: { status: 401, challenge: 'error', outcome: 'unauthenticated' },
    insufficient_scope: { status: 403, challenge: 'error', outcome: 'forbidden' },
    temporarily_unavailable: { status: 503, challenge: 'none', outcome: 'provider_unavailable' },
    bad_gateway: { status: 502, challenge: 'none', outcome: 'upstream_error' },
    gateway_timeout: { status: 504, challenge: 'none', outcome: 'upstream_error' },
  };
  t.same(CODES.sort(), Object.keys(expected).sort(), 'the closed set of SPEC §4 codes');
  for (const code of CODES) {
    t.test(code, async (t) => {
      const want = expected[code];
      const err = new TollgateError(code, 'a fixed sentence');
      t.equal(err.kind.outcome, want.outcome, 'metric outcome');
      const { status, headers, body } = renderError(err);
      t.equal(status, want.status);
      t.equal(headers['content-type'], 'application/json');
      t.equal(headers['cache-control'], 'no-store');
      t.same(JSON.parse(body), { error: code, error_description: 'a fixed sentence' });
      t.equal(headers['content-length'], String(Buffer.byteLength(body)));
      const challenge = {
        bare: 'Bearer realm="tollgate"',
        error: `Bearer realm="tollgate", error="${code}", error_description="a fixed sentence"`,
        none: undefined,
      }[want.challenge];
      t.equal(headers['www-authenticate'], challenge, 'WWW-Authenticate');
      t.equal(headers['retry-after'], status === 503 ? '1' : undefined, 'Retry-After only on 503');
    });
  }
});

t.test('insufficient_scope names the scopes', async (t) => {
  const { headers } = renderError(new TollgateError('insufficient_scope', 'needs more', { scope: 'orders:admin orders:write' }));
  t.equal(
    headers['www-authenticate'],
    'Bearer realm="tollgate", error="insufficient_scope", error_description="needs more", scope="orders:admin orders:write"',
  );
});

t.test('a path problem is invalid_request without a Bearer challenge', async (t) => {
  const { status, headers } = renderError(new TollgateError('invalid_request', 'bad path', { challenge: false }));
  t.equal(status, 400);
  t.equal(headers['www-authenticate'], undefined);
});

t.test('Retry-After is whole seconds, at least 1', async (t) => {
  const retry = (s: number) =>
    renderError(new TollgateError('temporarily_unavailable', 'x', { retryAfterS: s })).headers['retry-after'];
  t.equal(retry(5), '5');
  t.equal(retry(2.5), '3');
  t.equal(retry(0), '1');
  t.equal(retry(0.2), '1');
});

t.test('quotes and backslashes in a description stay inside the quoted-string', async (t) => {
  const { headers, body } = renderError(new TollgateError('invalid_token', 'say "no" \\ twice'));
  t.equal(
    headers['www-authenticate'],
    'Bearer realm="tollgate", error="invalid_token", error_description="say \\"no\\" \\\\ twice"',
  );
  t.equal(JSON.parse(body).error_description, 'say "no" \\ twice');
});

t.test('the cause is kept for the log, never rendered', async (t) => {
  const err = new TollgateError('temporarily_unavailable', 'the provider could not be asked', {
    cause: new Error('secret detail'),
  });
  t.equal((err.cause as Error).message, 'secret detail');
  t.notMatch(JSON.stringify(renderError(err)), /secret detail/);
});

/** The lines of the section that starts with a `## ` heading matching `heading`. */
function section(markdown: string, heading: RegExp): string | undefined {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^## /.test(l) && heading.test(l));
  if (start === -1) return undefined;
  const end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n');
}

/** A Markdown table's body rows as cells (header and separator rows left out). */
function tableRows(text: string): string[][] {
  const rows = text
    .split('\n')
    .filter((l) => l.trim().startsWith('|'))
    .map((l) =>
      l
        .trim()
        .replace(/^\||\|$/g, '')
        .split('|')
        .map((c) => c.trim()),
    );
  return rows.filter((r) => !r.every((c) => /^:?-+:?$/.test(c))).slice(1);
}

/** README's table once the README has one; SPEC §4's until then (the shared spec beside the checkout). */
function documentedTable(): { source: string; text: string } {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const errors = section(readme, /^## Errors\b/);
  if (errors !== undefined && tableRows(errors).length > 0) return { source: 'README.md', text: errors };
  const candidates = [process.env.TOLLGATE_SPEC, path.join(ROOT, '../shared/SPEC.md'), path.join(ROOT, '../../shared/SPEC.md')];
  for (const file of candidates) {
    if (file === undefined || !existsSync(file)) continue;
    const spec = section(readFileSync(file, 'utf8'), /^## 4\. Errors\b/);
    if (spec !== undefined) return { source: file, text: spec };
  }
  throw new Error("README.md has no table under '## Errors' and SPEC.md was not found (set TOLLGATE_SPEC)");
}

t.test('the documented error table agrees with src/errors.ts', async (t) => {
  const { source, text } = documentedTable();
  t.comment(`checking against ${source}`);
  const rows = tableRows(text);
  t.ok(rows.length >= 5, `${source}: a table with a row per refusal`);
  const codeNames = new RegExp(`\\b(${CODES.join('|')})\\b`, 'g');
  const statusOf = (row: string[]) => {
    // `401`, 401, **401** or `401 Unauthorized`: the first cell that starts with a status.
    for (const cell of row) {
      const m = /^[*`]*([1-5]\d{2})\b/.exec(cell);
      if (m) return Number(m[1]);
    }
    return undefined;
  };
  const documentedStatuses = new Set<number>();
  const documentedCodes = new Set<string>();
  for (const row of rows) {
    const line = `| ${row.join(' | ')} |`;
    const status = statusOf(row);
    if (status === undefined) {
      t.fail(`${source}: no status in ${line}`);
      continue;
    }
    documentedStatuses.add(status);
    t.ok(
      CODES.some((c) => ERRORS[c].status === status),
      `${source}: ${status} is a status of some code (${line})`,
    );
    for (const [, code] of line.matchAll(codeNames)) {
      documentedCodes.add(code!);
      t.equal(ERRORS[code as ErrorCode].status, status, `${source}: ${code} is ${status}`);
    }
    if (/error="(\w+)"/.test(line)) {
      const challenge = /error="(\w+)"/.exec(line)![1]!;
      const rendered = renderError(new TollgateError(challenge as ErrorCode, 'x')).headers['www-authenticate'];
      t.match(rendered, `error="${challenge}"`, `${source}: ${challenge} carries its challenge`);
    } else if (/Bearer realm="tollgate"/.test(line)) {
      const bare = CODES.filter((c) => ERRORS[c].challenge === null);
      t.same(
        bare.map((c) => ERRORS[c].status),
        [status],
        `${source}: the bare challenge is the ${status} of ${bare.join(', ')}`,
      );
    }
    if (/Retry-After/.test(line)) {
      t.equal(status, 503, `${source}: Retry-After only with 503`);
    }
  }
  for (const code of CODES) {
    t.ok(documentedStatuses.has(ERRORS[code].status), `${source}: ${code}'s status ${ERRORS[code].status} is documented`);
  }
  if (source === 'README.md') {
    t.same([...documentedCodes].sort(), [...CODES].sort(), 'README names every code in its table');
  } else {
    // SPEC §4 lists the codes in its prose, before the table.
    const listed = /CODE is one of\s+([^)]*?)\)/s.exec(text)?.[1] ?? '';
    t.same(
      [...listed.matchAll(/`(\w+)`/g)].map((m) => m[1]).sort(),
      [...CODES].sort(),
      'SPEC names exactly the codes of src/errors.ts',
    );
  }
});

t.test('a TollgateError carries no stack frames, and leaves stack traces of other errors alone', async (t) => {
  const limit = Error.stackTraceLimit;
  const cause = new Error('the provider timed out');
  const err = new TollgateError('temporarily_unavailable', 'the provider did not answer', { cause });
  t.equal(Error.stackTraceLimit, limit, 'the global limit is restored');
  t.notMatch(err.stack ?? '', /\n\s+at /, 'no frames captured for a refusal');
  t.match(err.stack, /^TollgateError: temporarily_unavailable: the provider did not answer/);
  t.equal(err.cause, cause);
  t.match(cause.stack, /\n\s+at /, 'the cause keeps its own frames');
  t.match(new Error('after').stack, /\n\s+at /, 'errors made afterwards still capture theirs');
});

t.test('refusals alike share one frozen rendering; any difference renders anew', async (t) => {
  const scoped = (scope: string) => renderError(new TollgateError('insufficient_scope', 'needs more', { scope }));
  const first = scoped('orders:write');
  t.equal(scoped('orders:write'), first, 'the same object for the same refusal');
  t.ok(Object.isFrozen(first) && Object.isFrozen(first.headers), 'frozen: a caller cannot change it for the next');
  t.not(scoped('orders:admin'), first);
  t.match(scoped('orders:admin').headers['www-authenticate'], /scope="orders:admin"/);
  const unavailable = (retryAfterS: number) =>
    renderError(new TollgateError('temporarily_unavailable', 'busy', { retryAfterS })).headers['retry-after'];
  t.equal(unavailable(1.2), '2');
  t.equal(unavailable(7), '7', 'Retry-After is part of what makes two refusals alike');
});
