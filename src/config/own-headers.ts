/**
 * Headers tollgate sets or forwards itself: RFC 9110 §7.6.1 hop-by-hop ones, framing, Host, the
 * X-Forwarded-* it writes and the client's credentials. An identity header (a claim header, the
 * minted token's) of such a name would be sent twice or break the request. Lower-cased.
 */
export const OWN_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'authorization',
  'cookie',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);
