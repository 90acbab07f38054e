// The agent's own packet-filter rules: only the first packet of each new flow goes to NFQUEUE.
// TCP is matched on the SYN flag (a conntrack NEW match misses ~1 SYN in a few thousand when ports are
// reused fast); other protocols on conntrack state NEW. Everything lives in chains/tables named
// FLOWTOP-* / "inet flowtop", so finding and removing exactly our own rules is a name lookup. Rules a
// dead agent left are swapped for the new ones in one transaction: with --fail-closed, removing them
// first let connections through unjudged while the agent restarted.
//
// Backends, tried in order: nftables with the native `queue` statement (absent on kernels without
// CONFIG_NFT_QUEUE: loading fails with ENOENT and we fall back), then iptables/ip6tables with the xt
// NFQUEUE target (works on nft-backed iptables too).
import { spawnSync } from 'node:child_process';
import type { FirewallCleanup } from './firewall-cleanup.js';
import { CHAIN_PREFIX, NFT_TABLE, type FirewallBackend } from './firewall-names.js';

export type { FirewallBackend } from './firewall-names.js';

export interface FirewallOptions {
  queueNum: number;
  /** Queues queueNum … queueNum + queueCount - 1, one per queue worker, chosen by the CPU that handles
   *  the packet (default 1: queueNum alone). */
  queueCount?: number;
  /** Fail-open: accept packets while no program is bound to the queue (--queue-bypass). */
  bypass: boolean;
  /** Also queue new inbound connections to local listeners (not on loopback: those were queued on the way out). */
  inbound: boolean;
  /** Also queue DNS answers (UDP/TCP from port 53, conntrack ESTABLISHED: only answers to queries made
   *  here) to this queue, always with bypass: they are read for host names and accepted at once. */
  dnsQueueNum?: number;
}

export interface InstalledFirewall {
  backend: FirewallBackend;
  /** Rules of an earlier agent that were found and replaced. */
  replacedStale: boolean;
  /** Removes every rule of ours; rejects naming what is left. */
  remove(): Promise<void>;
}

const COMMENT = 'flowtop-agent';

function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string; err: string; killed: boolean } {
  // detached: its own session, so a Ctrl-C sent to the agent's process group (the terminal's) does not
  // reach iptables once it runs (before its setsid it still can: see REMOVE_ATTEMPTS).
  // (Node honours `detached` in spawnSync; its type definitions omit it, hence the variable.)
  const options = { input, encoding: 'utf8' as const, timeout: 10_000, detached: true };
  const r = spawnSync(cmd, args, options);
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error ? String(r.error) : ''), killed: r.signal !== null };
}

const present = new Map<string, boolean>();
/** Whether a tool is installed; remembered once known. A check killed by a signal proves nothing: it
 *  is asked again, and a tool never answered for counts as present (its rules must not be skipped). */
function has(cmd: string): boolean {
  const known = present.get(cmd);
  if (known !== undefined) return known;
  for (let n = 0; n < REMOVE_ATTEMPTS; n++) {
    const long = run(cmd, ['--version']);
    const answer = long.ok || long.killed ? long : run(cmd, ['-V']);
    if (answer.killed) continue;
    present.set(cmd, answer.ok);
    return answer.ok;
  }
  return true;
}

/** Attempts at removing our rules from the agent itself (at install: the other backend's leftovers;
 *  at stop only when no cleanup helper runs). A tool can still die of a signal meant for the agent:
 *  the child is in the agent's process group from fork until it makes its own session (measured:
 *  under a SIGINT to the group every 15 ms, ~3 in 10 children died that way), so removal is checked
 *  and repeated until the listing shows nothing of ours. */
const REMOVE_ATTEMPTS = 20;
/** On a loaded machine a held Ctrl-C can kill most children before their setsid: removal keeps trying
 *  for this long after REMOVE_ATTEMPTS, then says what is left instead of returning as if done. */
const REMOVE_WINDOW_MS = 8000;

/** Runs `attempt` until it reports done: at least REMOVE_ATTEMPTS times, then until the window ends. */
function untilDone(attempt: () => boolean): boolean {
  const deadline = Date.now() + REMOVE_WINDOW_MS;
  for (let n = 0; n < REMOVE_ATTEMPTS || Date.now() < deadline; n++) if (attempt()) return true;
  return false;
}

// ---- iptables ----

/** A short tag unique to this run (chain names may be at most 28 characters). */
function runTag(): string {
  return `${process.pid.toString(36)}${(Date.now() % 36 ** 4).toString(36)}`.toUpperCase();
}

interface IptablesChains {
  out: string;
  in: string;
  dns: string;
}

function chainsFor(tag: string): IptablesChains {
  return { out: `${CHAIN_PREFIX}OUT-${tag}`, in: `${CHAIN_PREFIX}IN-${tag}`, dns: `${CHAIN_PREFIX}DNS-${tag}` };
}

function iptablesRules(o: FirewallOptions, chains: IptablesChains): string[] {
  const count = o.queueCount ?? 1;
  const queues = count > 1 ? `--queue-balance ${o.queueNum}:${o.queueNum + count - 1} --queue-cpu-fanout` : `--queue-num ${o.queueNum}`;
  const target = `-j NFQUEUE ${queues}${o.bypass ? ' --queue-bypass' : ''}`;
  const lines = [
    `:${chains.out} - [0:0]`,
    `-A ${chains.out} -p tcp --syn ${target}`,
    `-A ${chains.out} -p tcp -j RETURN`,
    `-A ${chains.out} -m conntrack --ctstate NEW ${target}`,
    `-I OUTPUT 1 -m comment --comment ${COMMENT} -j ${chains.out}`,
  ];
  if (o.inbound) {
    lines.push(
      `:${chains.in} - [0:0]`,
      `-A ${chains.in} -p tcp --syn ${target}`,
      `-A ${chains.in} -p tcp -j RETURN`,
      `-A ${chains.in} -m conntrack --ctstate NEW ${target}`,
      `-I INPUT 1 ! -i lo -m comment --comment ${COMMENT} -j ${chains.in}`,
    );
  }
  if (o.dnsQueueNum !== undefined) {
    const dns = `-m conntrack --ctstate ESTABLISHED -j NFQUEUE --queue-num ${o.dnsQueueNum} --queue-bypass`;
    lines.push(
      `:${chains.dns} - [0:0]`,
      `-A ${chains.dns} -p udp --sport 53 ${dns}`,
      `-A ${chains.dns} -p tcp --sport 53 ${dns}`,
      `-I INPUT 1 -m comment --comment ${COMMENT} -j ${chains.dns}`,
    );
  }
  return lines;
}

/** Restore lines that delete every chain of ours (any tag) and the jumps to them, as `tool -S` lists
 *  them now; empty when there are none. */
function iptablesRemoval(listTool: string): string[] {
  const listing = run(listTool, ['-w', '-t', 'mangle', '-S']);
  return listing.ok ? iptablesRemovalOf(listing.out) : [];
}

function iptablesRemovalOf(listing: string): string[] {
  const jumps: string[] = [];
  const chains: string[] = [];
  for (const line of listing.split('\n')) {
    const chain = /^-N (\S+)$/.exec(line)?.[1];
    if (chain?.startsWith(CHAIN_PREFIX)) chains.push(chain);
    else if (/^-A (OUTPUT|INPUT) /.test(line) && new RegExp(` -j ${CHAIN_PREFIX}\\S+$`).test(line)) jumps.push(line.replace(/^-A /, '-D '));
  }
  return [...jumps, ...chains.flatMap((c) => [`-F ${c}`, `-X ${c}`])];
}

function restore(tool: string, lines: string[]): { ok: boolean; err: string } {
  const r = run(tool, ['-w', '--noflush'], ['*mangle', ...lines, 'COMMIT', ''].join('\n'));
  return { ok: r.ok, err: r.err.trim() };
}

const FAMILIES = [
  { restore: 'iptables-restore', list: 'iptables' },
  { restore: 'ip6tables-restore', list: 'ip6tables' },
] as const;

/** Restore lines removing all of ours; undefined when the listing was killed (try again), empty when
 *  there is nothing of ours or the table cannot be listed at all. */
function listedRemoval(listTool: string): string[] | undefined {
  const listing = run(listTool, ['-w', '-t', 'mangle', '-S']);
  if (listing.killed) return undefined;
  return listing.ok ? iptablesRemovalOf(listing.out) : [];
}

/** Removes our chains and the jumps to them in one transaction per family, checked and repeated (see
 *  REMOVE_ATTEMPTS); true when any were there. */
function removeIptables(): { found: boolean; left: string[] } {
  let found = false;
  const left: string[] = [];
  for (const family of FAMILIES) {
    if (!has(family.list)) continue;
    const done = untilDone(() => {
      const removal = listedRemoval(family.list);
      if (removal === undefined) return false; // the listing was killed: try again
      if (removal.length === 0) return true;
      found = true;
      restore(family.restore, removal);
      return false; // checked by the next listing
    });
    if (!done) left.push(`${family.list} chains`);
  }
  return { found, left };
}

/** Installs the new chains and removes any earlier ones in the same transaction (per family): there is
 *  no moment with neither, which --fail-closed relies on while an agent restarts. True when earlier
 *  chains were replaced. */
function installIptables(o: FirewallOptions): boolean {
  const chains = chainsFor(runTag());
  let replaced = false;
  for (const family of FAMILIES) {
    if (family.list === 'ip6tables' && !has('ip6tables')) continue; // IPv6 filtering unavailable: IPv4 only
    const removal = iptablesRemoval(family.list);
    const r = restore(family.restore, [...iptablesRules(o, chains), ...removal]);
    if (!r.ok) throw new Error(`${family.restore} failed: ${r.err}`);
    if (removal.length > 0) replaced = true;
  }
  return replaced;
}

// ---- nftables ----

function nftRuleset(o: FirewallOptions): string {
  const count = o.queueCount ?? 1;
  const q = count > 1
    ? `queue num ${o.queueNum}-${o.queueNum + count - 1} ${o.bypass ? 'bypass,fanout' : 'fanout'}`
    : `queue num ${o.queueNum}${o.bypass ? ' bypass' : ''}`;
  const body = [
    // Created if missing, then deleted and defined anew: nft -f applies the file as one transaction,
    // so an earlier agent's table is replaced with no moment between.
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    `table inet ${NFT_TABLE} {`,
    '  chain out {',
    '    type filter hook output priority mangle; policy accept;',
    `    tcp flags & (syn | ack) == syn ${q}`,
    `    meta l4proto != tcp ct state new ${q}`,
    '  }',
  ];
  if (o.inbound) {
    body.push(
      '  chain in {',
      '    type filter hook input priority mangle; policy accept;',
      `    iifname != "lo" tcp flags & (syn | ack) == syn ${q}`,
      `    iifname != "lo" meta l4proto != tcp ct state new ${q}`,
      '  }',
    );
  }
  if (o.dnsQueueNum !== undefined) {
    const dns = `ct state established queue num ${o.dnsQueueNum} bypass`;
    body.push(
      '  chain dns {',
      '    type filter hook input priority mangle; policy accept;',
      `    udp sport 53 ${dns}`,
      `    tcp sport 53 ${dns}`,
      '  }',
    );
  }
  body.push('}', '');
  return body.join('\n');
}

function nftTablePresent(): boolean {
  return has('nft') && run('nft', ['list', 'table', 'inet', NFT_TABLE]).ok;
}

function removeNft(): { found: boolean; left: string[] } {
  if (!has('nft')) return { found: false, left: [] };
  let found = false;
  const done = untilDone(() => {
    const listing = run('nft', ['list', 'table', 'inet', NFT_TABLE]);
    if (listing.killed) return false; // look again
    if (!listing.ok) return true; // gone (or nftables unusable here)
    found = true;
    run('nft', ['delete', 'table', 'inet', NFT_TABLE]);
    return false;
  });
  return { found, left: done ? [] : [`nftables table ${NFT_TABLE}`] };
}

/** Installs the queue rules. Rules an earlier agent left are replaced in the same transaction, never
 *  removed first (see installIptables); those of the backend not chosen are removed afterwards. Throws
 *  with the tool's message when neither backend works (earlier rules are then left as they were).
 *  `cleanup`, started before, removes them at stop (see firewall-cleanup.ts); without it the agent's
 *  own tool runs do. */
export function installFirewall(o: FirewallOptions, cleanup?: FirewallCleanup, prefer?: FirewallBackend): InstalledFirewall {
  let backend: FirewallBackend | undefined;
  let replacedStale = false;
  const errors: string[] = [];
  if (prefer !== 'iptables' && has('nft')) {
    const hadTable = nftTablePresent();
    const r = run('nft', ['-f', '-'], nftRuleset(o));
    if (r.ok) {
      backend = 'nftables';
      replacedStale = hadTable;
      replacedStale = removeIptables().found || replacedStale;
    } else errors.push(`nft queue: ${r.err.trim().split('\n')[0] ?? ''}`);
  }
  if (!backend) {
    if (!has('iptables-restore')) {
      throw new Error(`no way to queue packets: ${errors.join('; ') || 'nft missing'}; iptables is not installed`);
    }
    try {
      replacedStale = installIptables(o);
      backend = 'iptables';
    } catch (error) {
      throw new Error([...errors, (error as Error).message].join('; '));
    }
    replacedStale = removeNft().found || replacedStale;
  }
  const chosen = backend;
  return {
    backend: chosen,
    replacedStale,
    remove: async () => {
      const { left, detail } = cleanup ? await cleanup.remove(chosen) : removeHere(chosen);
      if (left.length > 0) {
        throw new Error(`${left.join(' and ')} still present after repeated attempts${detail ? ` (last error: ${detail})` : ''}; starting the agent again replaces them, or delete them by hand (FLOWTOP chains in iptables' mangle table, or: nft delete table inet ${NFT_TABLE})`);
      }
    },
  };
}

/** Removal by the agent's own tool runs (no cleanup helper): checked and repeated, see REMOVE_ATTEMPTS. */
function removeHere(backend: FirewallBackend): { left: string[]; detail: string } {
  const { left } = backend === 'nftables' ? removeNft() : removeIptables();
  return { left, detail: left.length > 0 ? `each tool run was killed by a signal for ${REMOVE_WINDOW_MS / 1000} s` : '' };
}
