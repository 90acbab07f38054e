// The rule a remembered verdict leaves (docs/protocol.md, `verdict`): one function shared by the
// agent, the demo extension and the TUI (which builds the same rule for `rule-add` when the flow is
// no longer waiting), so every side means the same thing by a scope and a duration.
import { getDomain } from 'tldts';
import type {
  Action, BlockMode, Direction, FlowRecord, RememberScope, RuleEndpoint, RuleIdentity, RuleSpec, TransportProtocol,
} from '../protocol/messages.js';
import { normalizeHostName } from './schema.js';

/** What a remembered rule can be made from: the flow and what is verified about its process. */
export interface RememberSubject {
  /** The process instance's token (base64). */
  token?: string;
  /** The verified code identity; absent when the attribution is not secure. */
  identity?: RuleIdentity;
  protocol: TransportProtocol;
  direction: Direction;
  remoteAddress: string;
  remotePort: number;
  /** The remote's host name, when one is known (DNS answer, reverse lookup, the OS). */
  remoteHost?: string;
}

/** The subject of a flow record, with the identity verified for its process (if any). */
export function subjectOf(flow: FlowRecord, identity?: RuleIdentity, token: string | undefined = flow.token): RememberSubject {
  return {
    ...(token !== undefined ? { token } : {}),
    ...(identity ? { identity } : {}),
    protocol: flow.protocol,
    direction: flow.direction,
    remoteAddress: flow.remote.address,
    remotePort: flow.remote.port,
    ...(flow.remoteHost ? { remoteHost: flow.remoteHost.name } : {}),
  };
}

export interface RememberChoice {
  action: Action;
  /** `process`: this process instance until it exits; `always`: its code identity. */
  remember: 'process' | 'always';
  scope: RememberScope;
  /** With `always`: the rule ends this long after `now`. */
  forMs?: number;
  /** With `always`: kept in memory only, until the extension restarts. */
  session?: boolean;
  blockMode?: BlockMode;
}

/** The registrable domain of a host name ("www.bbc.co.uk" → "bbc.co.uk"), from the Public Suffix
 *  List, private suffixes included ("me.github.io" stays itself: github.io is shared by strangers).
 *  Undefined for an address, a single label, or a name that is itself a public suffix. */
export function registrableDomain(host: string): string | undefined {
  const name = normalizeHostName(host);
  if (!name) return undefined;
  return getDomain(name, { allowPrivateDomains: true }) ?? undefined;
}

/** The remote part of a rule for a scope, or why there is none (in words). */
export function scopeEndpoint(scope: RememberScope, subject: RememberSubject): RuleEndpoint | undefined | string {
  const host = subject.remoteHost !== undefined ? normalizeHostName(subject.remoteHost) : undefined;
  const remote: RuleEndpoint = host ? { host } : { address: subject.remoteAddress };
  switch (scope) {
    case 'process':
      return undefined;
    case 'endpoint':
      return { ...remote, port: subject.remotePort };
    case 'host':
      return remote;
    case 'port':
      return { port: subject.remotePort };
    case 'domain': {
      if (!host) return 'no host name is known for this flow, so it has no domain to remember (choose the host: its address)';
      const domain = registrableDomain(host);
      if (!domain) return `"${host}" has no registrable domain (it is a public suffix or a single label): choose the host instead`;
      return { domain };
    }
  }
}

/** The rule spec for a remembered verdict at `now`, or a sentence saying why none can be made. */
export function rememberedRule(choice: RememberChoice, subject: RememberSubject, now: number): RuleSpec | string {
  const endpoint = scopeEndpoint(choice.scope, subject);
  if (typeof endpoint === 'string') return endpoint;
  const spec: RuleSpec = {
    action: choice.action,
    ...(choice.action === 'block' && choice.blockMode ? { blockMode: choice.blockMode } : {}),
    protocol: subject.protocol,
    direction: subject.direction,
    ...(endpoint ? { endpoint } : {}),
    duration: { kind: 'always' },
  };
  if (choice.remember === 'process') {
    // The token names the process instance: the rule ends with it, whatever its trust.
    if (!subject.token) return 'this flow has no process token: nothing to remember it by';
    spec.duration = { kind: 'process', token: subject.token };
    return spec;
  }
  if (!subject.identity) return 'the program\'s code identity is not verified, so a rule for it could match another program';
  spec.identity = subject.identity;
  if (choice.forMs !== undefined) spec.duration = { kind: 'until', until: now + choice.forMs };
  if (choice.session) spec.session = true;
  return spec;
}
