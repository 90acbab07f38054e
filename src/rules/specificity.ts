/*
 * How specific a rule is: among matching rules of equal priority the most specific wins
 * (docs/rules.md, "Matching"; matcher.ts). Compared field by field:
 *   1. names a process (identity or token)        4. identity strength: token > sha256/package/
 *   2. names a remote (host/domain/address/cidr)     requirement > path only (weaker) > folder
 *   3. names a port or port range                 5. remote precision: host/address > domain (more labels
 *                                                    first) > cidr (longer prefix first)
 *                                                 6. port precision: one port > narrower range
 *                                                 7. names protocol, family, then direction
 * so process + endpoint + port > process + endpoint > process only > endpoint only > global.
 * The fields are weighted into one number, so comparing two rules is comparing two numbers.
 */
import type { Rule } from '../protocol/messages.js';
import { isFolderPath } from './model.js';

// Weights of the specificity fields above; the sum stays below 2^53 / 2 (the matcher's rank doubles it).
const W_PROCESS = 1e14;
const W_REMOTE = 1e13;
const W_PORT = 1e12;
const W_IDENTITY = 1e11; // × 0..4
const W_REMOTE_KIND = 1e10; // × 0..3
const W_REMOTE_DETAIL = 1e7; // × 0..128
const W_PORT_DETAIL = 10; // × 0..65536
const W_PROTOCOL = 4;
const W_FAMILY = 2;
const W_DIRECTION = 1;

/** Specificity of a rule (higher is more specific): the matcher's rank, which the rules bench reads too. */
export function specificity(rule: Rule): number {
  const id = rule.identity;
  const ep = rule.endpoint;
  const token = rule.duration.kind === 'process';
  let s = 0;
  if (id || token) s += W_PROCESS;
  s += W_IDENTITY * (token ? 4 : !id ? 0 : id.kind !== 'path' ? 3 : isFolderPath(id.value) ? 1 : 2);
  if (ep && (ep.host || ep.domain || ep.address || ep.cidr)) {
    s += W_REMOTE;
    if (ep.host || ep.address) s += W_REMOTE_KIND * 3;
    else if (ep.domain) s += W_REMOTE_KIND * 2 + W_REMOTE_DETAIL * Math.min(127, ep.domain.split('.').length);
    else if (ep.cidr) s += W_REMOTE_KIND + W_REMOTE_DETAIL * Number(ep.cidr.slice(ep.cidr.indexOf('/') + 1));
  }
  if (ep?.port !== undefined) s += W_PORT + W_PORT_DETAIL * 65536;
  else if (ep?.portRange) s += W_PORT + W_PORT_DETAIL * (65536 - (ep.portRange[1] - ep.portRange[0]));
  if (rule.protocol) s += W_PROTOCOL;
  if (ep?.family) s += W_FAMILY;
  if (rule.direction) s += W_DIRECTION;
  return s;
}
