/**
 * Issuer identifiers compared as providers and their users write them (README "Providers"): one
 * trailing `/` is dropped from each side, so `https://idp.example/api/oidc` and
 * `https://idp.example/api/oidc/` are one issuer. Providers differ on it (Glewlwyd publishes its
 * issuer without the slash, LemonLDAP::NG with it), operators copy whichever they see, and
 * openid-client already treats a host-only issuer both ways. Anything else must match exactly:
 * RFC 8414 §3.3 and OpenID Connect Discovery §4.3 compare issuers as strings.
 */

/** The form issuers are compared in: without one trailing `/`. */
export function issuerKey(issuer: string): string {
  return issuer.endsWith('/') ? issuer.slice(0, -1) : issuer;
}

export function sameIssuer(a: string, b: string): boolean {
  return issuerKey(a) === issuerKey(b);
}
