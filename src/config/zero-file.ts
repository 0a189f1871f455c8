/**
 * Zero-file mode speaks in the variables the operator set (README "Zero-file mode"): a problem
 * with the single provider or the listeners is reported as `TOLLGATE_CLIENT_ID: required`, not as
 * a YAML path the operator never wrote.
 */
import type { Problem } from './load.js';

/** The variable that sets each key of the single provider `default`. */
export const PROVIDER_VARIABLES = {
  issuer: 'TOLLGATE_ISSUER',
  introspection_endpoint: 'TOLLGATE_INTROSPECTION_ENDPOINT',
  client_id: 'TOLLGATE_CLIENT_ID',
  client_secret: 'TOLLGATE_CLIENT_SECRET',
  auth_method: 'TOLLGATE_AUTH_METHOD',
  ca_file: 'TOLLGATE_CA_FILE',
} as const;

const TOP_LEVEL: Readonly<Record<string, string>> = {
  listen: 'TOLLGATE_LISTEN',
  admin_listen: 'TOLLGATE_ADMIN_LISTEN',
  'upstream.url': 'TOLLGATE_UPSTREAM_URL',
};

const PROVIDER_PATH = /^providers\[0\]\.([a-z_]+)$/;

/**
 * A problem found in the tree built from the variables, said with the variable's name. A key no
 * variable sets (a key file that auth_method asks for) is the consequence of TOLLGATE_AUTH_METHOD:
 * only a configuration file can give it.
 */
export function nameVariable(problem: Problem): Problem {
  const top = TOP_LEVEL[problem.path];
  if (top !== undefined) return { path: top, message: problem.message };
  const key = PROVIDER_PATH.exec(problem.path)?.[1];
  if (key === undefined) return problem;
  const variable = (PROVIDER_VARIABLES as Record<string, string>)[key];
  if (variable !== undefined) return { path: variable, message: problem.message };
  return {
    path: PROVIDER_VARIABLES.auth_method,
    message: `${key}: ${problem.message} (only a configuration file can set ${key})`,
  };
}
