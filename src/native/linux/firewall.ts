// The agent's own packet-filter rules: only the first packet of each new flow goes to NFQUEUE.
// TCP is matched on the SYN flag (a conntrack NEW match misses ~1 SYN in a few thousand when ports are
// reused fast); other protocols on conntrack state NEW. Everything lives in chains/tables named
// FLOWTOP-* / "inet flowtop", so finding and removing exactly our own rules is a name lookup.
//
// Backends, tried in order: nftables with the native `queue` statement (absent on kernels without
// CONFIG_NFT_QUEUE: loading fails with ENOENT and we fall back), then iptables/ip6tables with the xt
// NFQUEUE target (works on nft-backed iptables too).
import { spawnSync } from 'node:child_process';

export type FirewallBackend = 'nftables' | 'iptables';

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
  remove(): void;
}

const CHAIN_OUT = 'FLOWTOP-OUT';
const CHAIN_IN = 'FLOWTOP-IN';
const CHAIN_DNS = 'FLOWTOP-DNS';
const COMMENT = 'flowtop-agent';
const NFT_TABLE = 'flowtop';

function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string; err: string } {
  // detached: its own session, so a Ctrl-C sent to the agent's process group (the terminal's) cannot
  // kill iptables half-way through removing the rules while the agent stops.
  // (Node honours `detached` in spawnSync; its type definitions omit it, hence the variable.)
  const options = { input, encoding: 'utf8' as const, timeout: 10_000, detached: true };
  const r = spawnSync(cmd, args, options);
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function has(cmd: string): boolean {
  return run(cmd, ['--version']).ok || run(cmd, ['-V']).ok;
}

// ---- iptables ----

function iptablesRuleset(o: FirewallOptions): string {
  const count = o.queueCount ?? 1;
  const queues = count > 1 ? `--queue-balance ${o.queueNum}:${o.queueNum + count - 1} --queue-cpu-fanout` : `--queue-num ${o.queueNum}`;
  const target = `-j NFQUEUE ${queues}${o.bypass ? ' --queue-bypass' : ''}`;
  const lines = [
    '*mangle',
    `:${CHAIN_OUT} - [0:0]`,
    `-A ${CHAIN_OUT} -p tcp --syn ${target}`,
    `-A ${CHAIN_OUT} -p tcp -j RETURN`,
    `-A ${CHAIN_OUT} -m conntrack --ctstate NEW ${target}`,
    `-I OUTPUT 1 -m comment --comment ${COMMENT} -j ${CHAIN_OUT}`,
  ];
  if (o.inbound) {
    lines.push(
      `:${CHAIN_IN} - [0:0]`,
      `-A ${CHAIN_IN} -p tcp --syn ${target}`,
      `-A ${CHAIN_IN} -p tcp -j RETURN`,
      `-A ${CHAIN_IN} -m conntrack --ctstate NEW ${target}`,
      `-I INPUT 1 ! -i lo -m comment --comment ${COMMENT} -j ${CHAIN_IN}`,
    );
  }
  if (o.dnsQueueNum !== undefined) {
    const dns = `-m conntrack --ctstate ESTABLISHED -j NFQUEUE --queue-num ${o.dnsQueueNum} --queue-bypass`;
    lines.push(
      `:${CHAIN_DNS} - [0:0]`,
      `-A ${CHAIN_DNS} -p udp --sport 53 ${dns}`,
      `-A ${CHAIN_DNS} -p tcp --sport 53 ${dns}`,
      `-I INPUT 1 -m comment --comment ${COMMENT} -j ${CHAIN_DNS}`,
    );
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Removes our chains and the jumps to them; true when anything was there. */
function removeIptables(tool: string): boolean {
  if (!has(tool)) return false;
  let found = false;
  for (const [hook, chain] of [['OUTPUT', CHAIN_OUT], ['INPUT', CHAIN_IN], ['INPUT', CHAIN_DNS]] as const) {
    const listing = run(tool, ['-w', '-t', 'mangle', '-S', hook]);
    for (const line of listing.out.split('\n')) {
      if (!line.startsWith(`-A ${hook} `) || !line.includes(`-j ${chain}`)) continue;
      found = true;
      const args = line.replace(/^-A /, '-D ').match(/"[^"]*"|\S+/g)?.map((a) => a.replace(/^"|"$/g, '')) ?? [];
      run(tool, ['-w', '-t', 'mangle', ...args]);
    }
    if (run(tool, ['-w', '-t', 'mangle', '-S', chain]).ok) {
      found = true;
      run(tool, ['-w', '-t', 'mangle', '-F', chain]);
      run(tool, ['-w', '-t', 'mangle', '-X', chain]);
    }
  }
  return found;
}

function installIptables(o: FirewallOptions): void {
  for (const tool of ['iptables-restore', 'ip6tables-restore']) {
    const r = run(tool, ['-w', '--noflush'], iptablesRuleset(o));
    if (!r.ok) {
      if (tool === 'ip6tables-restore' && !has('ip6tables')) continue; // IPv6 filtering unavailable: IPv4 only
      throw new Error(`${tool} failed: ${r.err.trim()}`);
    }
  }
}

// ---- nftables ----

function nftRuleset(o: FirewallOptions): string {
  const count = o.queueCount ?? 1;
  const q = count > 1
    ? `queue num ${o.queueNum}-${o.queueNum + count - 1} ${o.bypass ? 'bypass,fanout' : 'fanout'}`
    : `queue num ${o.queueNum}${o.bypass ? ' bypass' : ''}`;
  const body = [
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

function removeNft(): boolean {
  if (!has('nft')) return false;
  if (!run('nft', ['list', 'table', 'inet', NFT_TABLE]).ok) return false;
  run('nft', ['delete', 'table', 'inet', NFT_TABLE]);
  return true;
}

/** Removes any rules an earlier agent left (crash, SIGKILL); true when some were found. */
export function removeStaleFirewall(): boolean {
  const a = removeNft();
  const b = removeIptables('iptables');
  const c = removeIptables('ip6tables');
  return a || b || c;
}

/** Installs the queue rules, replacing any stale ones first. Throws with the tool's message when
 *  neither backend works. */
export function installFirewall(o: FirewallOptions, prefer?: FirewallBackend): InstalledFirewall {
  const replacedStale = removeStaleFirewall();
  let backend: FirewallBackend | undefined;
  const errors: string[] = [];
  if (prefer !== 'iptables' && has('nft')) {
    const r = run('nft', ['-f', '-'], nftRuleset(o));
    if (r.ok) backend = 'nftables';
    else {
      errors.push(`nft queue: ${r.err.trim().split('\n')[0] ?? ''}`);
      removeNft();
    }
  }
  if (!backend) {
    if (!has('iptables-restore')) {
      throw new Error(`no way to queue packets: ${errors.join('; ') || 'nft missing'}; iptables is not installed`);
    }
    try {
      installIptables(o);
      backend = 'iptables';
    } catch (error) {
      removeIptables('iptables');
      removeIptables('ip6tables');
      throw new Error([...errors, (error as Error).message].join('; '));
    }
  }
  const chosen = backend;
  return {
    backend: chosen,
    replacedStale,
    remove: () => {
      if (chosen === 'nftables') removeNft();
      else {
        removeIptables('iptables');
        removeIptables('ip6tables');
      }
    },
  };
}

/** Whether our rules are present now (for --status). */
export function firewallPresent(): FirewallBackend | undefined {
  if (has('nft') && run('nft', ['list', 'table', 'inet', NFT_TABLE]).ok) return 'nftables';
  if (has('iptables') && run('iptables', ['-w', '-t', 'mangle', '-S', CHAIN_OUT]).ok) return 'iptables';
  return undefined;
}

