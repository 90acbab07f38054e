// The row ids of what a flow row refers to by number (schema.ts): programs' identities, paths,
// addresses, host names and rule ids, each found in its small table or inserted there once, then
// remembered. The recorder sends each text once, numbered (batch.ts RowColumns); the ids those texts
// came to are kept beside them, so a row names its address, host and rule without a Map lookup.
// Finding a new identity or a rule's first block also makes the history event that says so.
import type Database from 'better-sqlite3';
import { getDomain } from 'tldts';
import type { HistoryEvent, ProcessFacts, RowColumns } from './batch.js';
import { ACTION, BY, MAX_TEXT_IDS } from './batch.js';

/** Texts kept by the recorder's number: every number a batch uses is among the recorder's newest
 *  MAX_TEXT_IDS (batch.ts), so a ring of twice that holds them all. */
const TEXT_RING = 2 * MAX_TEXT_IDS;
/** Ids remembered per table (paths, hosts, addresses) before the memory is cleared and refilled. */
const MAX_REMEMBERED = 100_000;

interface KnownRule {
  id: number;
  blocked: boolean;
}

export class Interner {
  private readonly identities = new Map<string, { id: number; path?: number; sha256?: string }>();
  private readonly paths = new Map<string, number>();
  private readonly hosts = new Map<string, number>();
  private readonly addrs = new Map<string, number>();
  private readonly rules = new Map<string, KnownRule>();
  /** The recorder's texts by number (number % TEXT_RING, with the number that holds each slot), and
   *  the row ids they came to as an address, a host and a rule (0: not looked up yet). */
  private readonly texts: string[] = new Array<string>(TEXT_RING).fill('');
  private readonly textNumbers = new Float64Array(TEXT_RING).fill(-1);
  private readonly addrOfText = new Float64Array(TEXT_RING);
  private readonly hostOfText = new Float64Array(TEXT_RING);
  private readonly ruleOfText: Array<KnownRule | undefined> = new Array<KnownRule | undefined>(TEXT_RING).fill(undefined);
  private readonly statements;

  constructor(db: Database.Database) {
    this.statements = {
      identityByKey: db.prepare('SELECT id, path, sha256 FROM identities WHERE key = ?'),
      identityByPath: db.prepare('SELECT key, sha256 FROM identities WHERE path = ? ORDER BY id DESC LIMIT 1'),
      insertIdentity: db.prepare('INSERT INTO identities (key, name, path, sha256, package, first_seen) VALUES (?, ?, ?, ?, ?, ?)'),
      setSha256: db.prepare('UPDATE identities SET sha256 = ?, package = coalesce(?, package) WHERE id = ?'),
      pathId: db.prepare('SELECT id FROM paths WHERE path = ?'),
      insertPath: db.prepare('INSERT INTO paths (path) VALUES (?)'),
      hostId: db.prepare('SELECT id FROM hosts WHERE name = ?'),
      insertHost: db.prepare('INSERT INTO hosts (name, domain) VALUES (?, ?)'),
      addrId: db.prepare('SELECT id FROM addrs WHERE addr = ?'),
      insertAddr: db.prepare('INSERT INTO addrs (addr) VALUES (?)'),
      rule: db.prepare('SELECT id, first_block FROM rules WHERE rule_id = ?'),
      insertRule: db.prepare('INSERT INTO rules (rule_id) VALUES (?)'),
      ruleBlocked: db.prepare('UPDATE rules SET first_block = ? WHERE id = ?'),
    };
  }

  /** Keeps the texts a batch numbers for the first time (kept even when its transaction fails:
   *  later batches refer to them). */
  learnTexts(cols: RowColumns): void {
    for (let i = 0; i < cols.texts.length; i++) {
      const number = cols.firstText + i;
      const slot = number % TEXT_RING;
      this.texts[slot] = cols.texts[i]!;
      this.textNumbers[slot] = number;
      this.addrOfText[slot] = 0;
      this.hostOfText[slot] = 0;
      this.ruleOfText[slot] = undefined;
    }
  }

  /** Forgets every id remembered (after a rollback they may name rows that are not there); the
   *  texts stay. */
  forgetIds(): void {
    for (const cache of [this.identities, this.paths, this.hosts, this.addrs, this.rules]) cache.clear();
    this.addrOfText.fill(0);
    this.hostOfText.fill(0);
    this.ruleOfText.fill(undefined);
  }

  /** The row id of an identity this writer already found or made, by key. */
  knownIdentity(key: string): number | undefined {
    return this.identities.get(key)?.id;
  }

  /** A text of the recorder's by its number ("?" for one this writer never received: a batch lost
   *  before it was learnt). */
  private text(number: number): string {
    const slot = number % TEXT_RING;
    return this.textNumbers[slot] === number ? this.texts[slot]! : '?';
  }

  addrByText(number: number): number {
    return this.rowOfText(number, this.addrOfText, this.internAddr);
  }

  private readonly internAddr = (text: string): number => this.addr(text);
  private readonly internHost = (text: string): number => this.host(text);

  hostByText(number: number): number {
    return this.rowOfText(number, this.hostOfText, this.internHost);
  }

  /** The row id a text came to in one table (`rows`: this table's ids by text slot, 0 unknown). */
  private rowOfText(number: number, rows: Float64Array, intern: (text: string) => number): number {
    const slot = number % TEXT_RING;
    const held = this.textNumbers[slot] === number;
    if (held && rows[slot]! > 0) return rows[slot]!;
    const id = intern(this.text(number));
    if (held) rows[slot] = id;
    return id;
  }

  /** rule(), for a rule id and a remote (-1: none) given as the recorder's text numbers. */
  ruleByText(number: number, verdict: number, facts: ProcessFacts, remote: number, events: HistoryEvent[], now: number): number {
    const slot = number % TEXT_RING;
    const cached = this.textNumbers[slot] === number ? this.ruleOfText[slot] : undefined;
    // a rule already known to have blocked needs no more than its id
    if (cached && (cached.blocked || (verdict & 3) !== ACTION.block)) return cached.id;
    const id = this.rule(this.text(number), verdict, facts, remote < 0 ? undefined : this.text(remote), events, now);
    if (this.textNumbers[slot] === number) this.ruleOfText[slot] = this.rules.get(this.text(number));
    return id;
  }

  /** The identity's row id, made on first sight with a `first-seen` event, or `changed` when another
   *  identity had the same path (a new hash) or this one's recorded hash moved (a package update). */
  identity(f: ProcessFacts, events: HistoryEvent[], now: number): number | undefined {
    if (f.key === undefined) return undefined;
    let known = this.identities.get(f.key);
    if (!known) {
      const row = this.statements.identityByKey.get(f.key) as { id: number; path: number | null; sha256: string | null } | undefined;
      if (row) known = { id: row.id, ...(row.path !== null ? { path: row.path } : {}), ...(row.sha256 !== null ? { sha256: row.sha256 } : {}) };
    }
    if (!known) {
      const path = f.path !== undefined ? this.path(f.path) : undefined;
      const before = path !== undefined ? this.statements.identityByPath.get(path) as { key: string; sha256: string | null } | undefined : undefined;
      const info = this.statements.insertIdentity.run(f.key, f.name ?? null, path ?? null, f.sha256 ?? null, f.package ?? null, now);
      known = { id: Number(info.lastInsertRowid), ...(path !== undefined ? { path } : {}), ...(f.sha256 !== undefined ? { sha256: f.sha256 } : {}) };
      const who = f.path ?? f.name ?? f.key;
      events.push(before
        ? { time: now, kind: 'changed', identity: f.key, ...named(f), detail: `${who} changed: was ${describe(before.key, before.sha256)}, now ${describe(f.key, f.sha256 ?? null)}` }
        : { time: now, kind: 'first-seen', identity: f.key, ...named(f), detail: `${who} connected for the first time (${f.key})` });
    } else if (f.sha256 !== undefined && known.sha256 !== undefined && f.sha256 !== known.sha256) {
      events.push({ time: now, kind: 'changed', identity: f.key, ...named(f), detail: `${f.path ?? f.name ?? f.key} changed: sha256 was ${known.sha256.slice(0, 16)}…, now ${f.sha256.slice(0, 16)}…${f.package ? ` (package ${f.package})` : ''}` });
      this.statements.setSha256.run(f.sha256, f.package ?? null, known.id);
      known.sha256 = f.sha256;
    } else if (f.sha256 !== undefined && known.sha256 === undefined) {
      this.statements.setSha256.run(f.sha256, f.package ?? null, known.id);
      known.sha256 = f.sha256;
    }
    this.identities.set(f.key, known);
    return known.id;
  }

  /** The rule's row id; the first flow a rule blocks makes a `rule-blocking` event. */
  rule(ruleId: string, verdict: number, facts: ProcessFacts | undefined, remote: string | undefined, events: HistoryEvent[], now: number): number {
    let known = this.rules.get(ruleId);
    if (!known) {
      const row = this.statements.rule.get(ruleId) as { id: number; first_block: number | null } | undefined;
      known = row ? { id: row.id, blocked: row.first_block !== null } : { id: Number(this.statements.insertRule.run(ruleId).lastInsertRowid), blocked: false };
      this.rules.set(ruleId, known);
    }
    if (!known.blocked && (verdict & 3) === ACTION.block && verdict >> 2 === BY.rule) {
      known.blocked = true;
      this.statements.ruleBlocked.run(now, known.id);
      const who = facts ? facts.path ?? facts.name ?? facts.key : undefined;
      events.push({ time: now, kind: 'rule-blocking', rule: ruleId, ...(facts?.key ? { identity: facts.key } : {}), ...(facts ? named(facts) : {}), detail: `rule ${ruleId} blocked its first connection${who ? ` (${who}` : ''}${remote ? `${who ? ' to ' : ' ('}${remote})` : who ? ')' : ''}` });
    }
    return known.id;
  }

  path(path: string): number {
    return intern(this.paths, path, this.statements.pathId, () => this.statements.insertPath.run(path));
  }

  host(name: string): number {
    return intern(this.hosts, name, this.statements.hostId, () => this.statements.insertHost.run(name, domainOf(name)));
  }

  addr(addr: string): number {
    return intern(this.addrs, addr, this.statements.addrId, () => this.statements.insertAddr.run(addr));
  }
}

function intern(cache: Map<string, number>, key: string, find: Database.Statement, insert: () => Database.RunResult): number {
  let id = cache.get(key);
  if (id !== undefined) return id;
  const row = find.get(key) as { id: number } | undefined;
  id = row ? row.id : Number(insert().lastInsertRowid);
  if (cache.size > MAX_REMEMBERED) cache.clear();
  cache.set(key, id);
  return id;
}

function named(f: ProcessFacts): { name?: string; path?: string } {
  return { ...(f.name !== undefined ? { name: f.name } : {}), ...(f.path !== undefined ? { path: f.path } : {}) };
}

function describe(key: string, sha256: string | null): string {
  if (key.startsWith('sha256:')) return `sha256 ${key.slice(7, 23)}…`;
  return sha256 ? `${key} (sha256 ${sha256.slice(0, 16)}…)` : key;
}

function domainOf(name: string): string | null {
  if (/^[\d.]+$/.test(name) || name.includes(':')) return null;
  return getDomain(name) ?? null;
}
