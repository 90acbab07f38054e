/*
 * Rule matching: which stored rule decides a flow (docs/rules.md, "Matching").
 *
 * A rule matches a flow when every part it names matches:
 *   - identity: the flow's attribution is `secure` and its identity string equals the rule's
 *     ("sha256:HEX", "package:NAME:/path", or a macOS requirement); a path-only identity compares the
 *     attribution's path, and a folder (a path ending in "/") contains it. An unknown identity, or
 *     trust insecure / gone / pending, NEVER matches an identity rule (OpenSnitch counts a missing
 *     hash as a match; a firewall must not fail open).
 *   - duration `process`: the flow's token equals the rule's token (a process instance, never a PID).
 *     A token rule without an identity matches that instance whatever its trust: the token itself names
 *     the instance, it cannot be reused.
 *   - endpoint: host (exact name), domain (the name or any subdomain: "example.com" matches
 *     a.example.com, not badexample.com), address (exact, IPv4-mapped IPv6 is IPv4), cidr (v4/v6),
 *     port or port range (inclusive), address family (IPv4-mapped IPv6 is IPv4).
 *   - protocol, direction: equal when named.
 * Skipped: disabled rules and `until` rules whose time has come (until <= now). A `once` rule matches
 * like any other; RuleStore keeps it in memory only and removes it at its first hit.
 *
 * The highest `priority` wins (absent: 0); among equal priorities the most specific wins (imports
 * use priorities to keep another firewall's order; specificity.ts compares the fields), so
 * process + endpoint + port > process + endpoint > process only > endpoint only > global.
 * At equal specificity block beats allow; among equals otherwise, the earlier rule in the list.
 *
 * Speed: rules are compiled once into buckets keyed by token, identity string, path and folder, and
 * inside a bucket by exact address, exact host and domain; each list is pre-sorted, so the first rule
 * that matches in a list is that list's best. A match touches a handful of short lists.
 */
import type { Attribution, Trust } from '../attribution/types.js';
import type { Direction, FlowRecord, Rule, TransportProtocol } from '../protocol/messages.js';
import { cidrContainsWords, formatIp, parseCidr, parseIp, parseIpInto, type Cidr } from './ip.js';
import { identityKey, isFolderPath } from './model.js';
import { specificity } from './specificity.js';
import { ruleLayer, type RuleLayer } from './fleet-layer.js';

export interface FlowFacts {
  /** Trust of the attribution; identity and path count only when it is `secure`. */
  trust?: Trust;
  /** Attribution identity string ("sha256:HEX", "package:NAME:/path", macOS requirement). */
  identity?: string;
  /** Executable path from the attribution (for path-only rules). */
  path?: string;
  /** Base64 process token. */
  token?: string;
  protocol: TransportProtocol;
  direction: Direction;
  remoteAddress: string;
  remotePort: number;
  /** Remote host name, when known (DNS answer, reverse lookup, OS). */
  remoteHost?: string;
}

/** Facts of a flow and its attribution (identity and path dropped unless the attribution is secure). */
export function flowFacts(flow: FlowRecord, attribution?: Attribution): FlowFacts {
  const facts: FlowFacts = {
    protocol: flow.protocol,
    direction: flow.direction,
    remoteAddress: flow.remote.address,
    remotePort: flow.remote.port,
  };
  if (flow.token !== undefined) facts.token = flow.token;
  if (flow.remoteHost) facts.remoteHost = flow.remoteHost.name;
  if (attribution) {
    facts.trust = attribution.trust;
    if (attribution.trust === 'secure') {
      if (attribution.identity !== undefined) facts.identity = attribution.identity;
      if (attribution.path !== undefined) facts.path = attribution.path;
    }
  }
  return facts;
}

interface Compiled {
  rule: Rule;
  /** Compared before the rank: a higher priority wins. */
  priority: number;
  /** specificity × 2 + 1 for block: a higher rank wins. */
  rank: number;
  until: number;
  protocol: TransportProtocol | undefined;
  direction: Direction | undefined;
  /** 0 any, else the remote address family the rule is limited to. */
  family: 0 | 4 | 6;
  portLow: number;
  portHigh: number;
  cidr: Cidr | undefined;
  /** Identity checks left for rules bucketed by token. */
  needIdentity: string | undefined;
  needPath: string | undefined;
  needFolder: string | undefined;
}

/** Whether `path` is the folder itself or lies under it ("/a/b/" contains "/a/b" and "/a/b/c"). */
function inFolder(path: string, folder: string): boolean {
  return path.startsWith(folder) || path === folder.slice(0, -1);
}

/** The rules of one bucket, split by how the remote is named. Every list is sorted by rank. */
class EndpointIndex {
  /** IPv4 addresses keyed by their 32-bit value (no string to build per flow), IPv6 by canonical text. */
  readonly byAddress4 = new Map<number, Compiled[]>();
  readonly byAddress6 = new Map<string, Compiled[]>();
  readonly byHost = new Map<string, Compiled[]>();
  readonly byDomain = new Map<string, Compiled[]>();
  /** cidr, port-only and remote-less rules. */
  readonly scan: Compiled[] = [];

  add(c: Compiled): void {
    const ep = c.rule.endpoint;
    if (ep?.address) {
      const ip = parseIp(ep.address);
      if (ip?.family === 4) push(this.byAddress4, ip.words[0] as number, c);
      else if (ip) push(this.byAddress6, formatIp(ip), c);
    }
    // Checked rules are lowercase already; rules from elsewhere (a protocol peer) may not be.
    else if (ep?.host) push(this.byHost, ep.host.toLowerCase().replace(/\.$/, ''), c);
    else if (ep?.domain) push(this.byDomain, ep.domain.toLowerCase().replace(/\.$/, ''), c);
    else this.scan.push(c);
  }

  sort(): void {
    for (const map of [this.byAddress4, this.byAddress6, this.byHost, this.byDomain]) for (const list of map.values()) list.sort(byRank);
    this.scan.sort(byRank);
  }

  best(view: FactsView, now: number, current: Compiled | undefined): Compiled | undefined {
    let best = current;
    if (this.byAddress4.size > 0 || this.byAddress6.size > 0) {
      const family = view.ipFamily();
      if (family === 4) best = firstMatch(this.byAddress4.get(view.words[0] as number), view, now, best);
      else if (family === 6 && this.byAddress6.size > 0) best = firstMatch(this.byAddress6.get(view.address6()), view, now, best);
    }
    if (this.byHost.size > 0 || this.byDomain.size > 0) {
      const host = view.host();
      if (host !== undefined) {
        if (this.byHost.size > 0) best = firstMatch(this.byHost.get(host), view, now, best);
        if (this.byDomain.size > 0) {
          // The name itself, then each parent: "a.example.com", "example.com", "com".
          for (let at = 0; at >= 0; at = host.indexOf('.', at) + 1 || -1) {
            best = firstMatch(this.byDomain.get(at === 0 ? host : host.slice(at)), view, now, best);
          }
        }
      }
    }
    return firstMatch(this.scan, view, now, best);
  }
}

function push<K>(map: Map<K, Compiled[]>, key: K, c: Compiled): void {
  const list = map.get(key);
  if (list) list.push(c);
  else map.set(key, [c]);
}

// Array.prototype.sort is stable, so equal ranks keep the rules' order in the list.
function byRank(a: Compiled, b: Compiled): number {
  return b.priority - a.priority || b.rank - a.rank;
}

function outranks(a: Compiled, b: Compiled): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.rank > b.rank;
}

/** The first rule of a sorted list that matches, if it outranks `best`. */
function firstMatch(list: Compiled[] | undefined, view: FactsView, now: number, best: Compiled | undefined): Compiled | undefined {
  if (!list) return best;
  for (const c of list) {
    if (best && !outranks(c, best)) return best; // nothing further in this list can win
    if (matches(c, view, now)) return c;
  }
  return best;
}

function matches(c: Compiled, view: FactsView, now: number): boolean {
  const f = view.facts;
  if (c.until <= now) return false;
  if (c.protocol !== undefined && c.protocol !== f.protocol) return false;
  if (c.direction !== undefined && c.direction !== f.direction) return false;
  if (f.remotePort < c.portLow || f.remotePort > c.portHigh) return false;
  if (c.needIdentity !== undefined && (f.trust !== 'secure' || f.identity !== c.needIdentity)) return false;
  if (c.needPath !== undefined && (f.trust !== 'secure' || f.path !== c.needPath)) return false;
  if (c.needFolder !== undefined && (f.trust !== 'secure' || f.path === undefined || !inFolder(f.path, c.needFolder))) return false;
  if (c.family !== 0 && view.ipFamily() !== c.family) return false;
  if (c.cidr !== undefined) {
    const family = view.ipFamily();
    if (family === 0 || !cidrContainsWords(c.cidr, family, view.words)) return false;
  }
  return true;
}

/** The facts of the flow being matched, parsed lazily: only what some candidate rule needs is computed.
 *  One view per RuleSet, reset for each match (matching never re-enters), so a match allocates nothing
 *  for an IPv4 flow. */
class FactsView {
  facts: FlowFacts = { protocol: 'tcp', direction: 'outbound', remoteAddress: '', remotePort: 0 };
  /** -1 not parsed yet, 0 not an address, 4 or 6. */
  private family: -1 | 0 | 4 | 6 = -1;
  readonly words = new Uint32Array(4);
  private canonical: string | undefined;
  private name: string | null | undefined;

  reset(facts: FlowFacts): void {
    this.facts = facts;
    this.family = -1;
    this.canonical = undefined;
    this.name = undefined;
  }

  ipFamily(): 0 | 4 | 6 {
    if (this.family < 0) this.family = parseIpInto(this.facts.remoteAddress, this.words);
    return this.family as 0 | 4 | 6;
  }

  /** Canonical IPv6 text (only asked for IPv6 flows). */
  address6(): string {
    if (this.canonical === undefined) this.canonical = formatIp({ family: 6, words: Array.from(this.words) });
    return this.canonical;
  }

  host(): string | undefined {
    if (this.name === undefined) {
      const raw = this.facts.remoteHost;
      this.name = raw ? raw.toLowerCase().replace(/\.$/, '') : null;
    }
    return this.name ?? undefined;
  }
}

/** Rules compiled for matching. Build one per rule list change (RuleStore keeps one up to date).
 *  With fleet rules among them (docs/rules.md, "Fleet rules") each layer — this host's fleet rules,
 *  the fleet-wide rules, the local rules — is matched on its own as above, and a block from any layer
 *  wins; with no block, the allow of the first layer in that order that has one. */
export class RuleSet {
  private readonly layers?: readonly RuleSet[];

  private readonly byToken = new Map<string, EndpointIndex>();
  private readonly byIdentity = new Map<string, EndpointIndex>();
  private readonly byPath = new Map<string, EndpointIndex>();
  private readonly byFolder = new Map<string, EndpointIndex>();
  private readonly global = new EndpointIndex();
  readonly size: number;

  constructor(readonly rules: readonly Rule[], layered = true) {
    if (layered && rules.some((r) => ruleLayer(r.id) !== 'local')) {
      const order: RuleLayer[] = ['fleet-host', 'fleet-all', 'local'];
      this.layers = order.map((layer) => new RuleSet(rules.filter((r) => ruleLayer(r.id) === layer), false));
      this.size = this.layers.reduce((n, l) => n + l.size, 0);
      return;
    }
    let size = 0;
    for (const rule of rules) {
      if (!rule.enabled) continue;
      const c = compile(rule);
      if (!c) continue;
      size++;
      const id = rule.identity;
      if (rule.duration.kind === 'process') {
        c.needIdentity = id && id.kind !== 'path' ? identityKey(id) : undefined;
        if (id?.kind === 'path') {
          if (isFolderPath(id.value)) c.needFolder = id.value;
          else c.needPath = id.value;
        }
        bucket(this.byToken, rule.duration.token).add(c);
      } else if (id?.kind === 'path') bucket(isFolderPath(id.value) ? this.byFolder : this.byPath, id.value).add(c);
      else if (id) bucket(this.byIdentity, identityKey(id) as string).add(c);
      else this.global.add(c);
    }
    for (const map of [this.byToken, this.byIdentity, this.byPath, this.byFolder]) for (const index of map.values()) index.sort();
    this.global.sort();
    this.size = size;
  }

  private readonly view = new FactsView();

  /** Folder rules for the path itself ("/a/b" is in "/a/b/") and every folder above it. */
  private bestInFolders(path: string, view: FactsView, now: number, best: Compiled | undefined): Compiled | undefined {
    best = this.byFolder.get(`${path}/`)?.best(view, now, best) ?? best;
    for (let at = path.lastIndexOf('/'); at > 0; at = path.lastIndexOf('/', at - 1)) {
      best = this.byFolder.get(path.slice(0, at + 1))?.best(view, now, best) ?? best;
    }
    return best;
  }

  /** The rule that decides this flow, or undefined when none matches. */
  match(facts: FlowFacts, now: number): Rule | undefined {
    if (this.layers) return matchLayers(this.layers, facts, now);
    const view = this.view;
    view.reset(facts);
    let best: Compiled | undefined;
    if (facts.token !== undefined && this.byToken.size > 0) best = this.byToken.get(facts.token)?.best(view, now, best) ?? best;
    // Identity and path buckets are only consulted for a secure attribution: unknown never matches.
    if (facts.trust === 'secure') {
      if (facts.identity !== undefined && this.byIdentity.size > 0) best = this.byIdentity.get(facts.identity)?.best(view, now, best) ?? best;
      if (facts.path !== undefined && this.byPath.size > 0) best = this.byPath.get(facts.path)?.best(view, now, best) ?? best;
      if (facts.path !== undefined && this.byFolder.size > 0) best = this.bestInFolders(facts.path, view, now, best);
    }
    best = this.global.best(view, now, best);
    return best?.rule;
  }
}

function bucket(map: Map<string, EndpointIndex>, key: string): EndpointIndex {
  let index = map.get(key);
  if (!index) map.set(key, (index = new EndpointIndex()));
  return index;
}

function compile(rule: Rule): Compiled | undefined {
  const ep = rule.endpoint;
  let cidr: Cidr | undefined;
  if (ep?.cidr) {
    cidr = parseCidr(ep.cidr)?.cidr;
    if (!cidr) return undefined; // never reached for a checked rule; an unreadable block matches nothing
  }
  return {
    rule,
    priority: rule.priority ?? 0,
    rank: specificity(rule) * 2 + (rule.action === 'block' ? 1 : 0),
    until: rule.duration.kind === 'until' ? rule.duration.until : Infinity,
    protocol: rule.protocol,
    direction: rule.direction,
    family: ep?.family === 'ipv4' ? 4 : ep?.family === 'ipv6' ? 6 : 0,
    portLow: ep?.port ?? ep?.portRange?.[0] ?? 0,
    portHigh: ep?.port ?? ep?.portRange?.[1] ?? 65535,
    cidr,
    needIdentity: undefined,
    needPath: undefined,
    needFolder: undefined,
  };
}

const compiledCache = new WeakMap<readonly Rule[], { length: number; set: RuleSet }>();
/** The last list compiled: a caller that copies the same rules into a new array on every call
 *  (e.g. [...store.rules()]) still gets the compiled set, after a pointer comparison per rule. */
let lastCompiled: { rules: readonly Rule[]; set: RuleSet } | undefined;

function sameRules(a: readonly Rule[], b: readonly Rule[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The rule that decides a flow, or undefined. `rules` is either a RuleSet (fastest: RuleStore.ruleSet()
 * keeps one up to date) or a list of rules. A list is compiled once and reused while the same array of
 * the same length, or a new array holding the same rule objects, is passed; a changed rule must be a
 * new object (RuleStore makes it so).
 */
export function matchRule(rules: RuleSet | readonly Rule[], facts: FlowFacts, now: number): Rule | undefined {
  if (rules instanceof RuleSet) return rules.match(facts, now);
  const cached = compiledCache.get(rules);
  if (cached && cached.length === rules.length) return cached.set.match(facts, now);
  let set: RuleSet;
  if (lastCompiled && sameRules(lastCompiled.rules, rules)) set = lastCompiled.set;
  else {
    set = new RuleSet(rules);
    lastCompiled = { rules: [...rules], set };
  }
  compiledCache.set(rules, { length: rules.length, set });
  return set.match(facts, now);
}

/** Deny wins across layers: no layer can let through what another blocks. */
function matchLayers(layers: readonly RuleSet[], facts: FlowFacts, now: number): Rule | undefined {
  let allow: Rule | undefined;
  for (const layer of layers) {
    const rule = layer.match(facts, now);
    if (rule?.action === 'block') return rule;
    allow ??= rule;
  }
  return allow;
}
