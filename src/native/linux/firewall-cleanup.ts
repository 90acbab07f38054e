// The process that removes the agent's firewall rules when it stops. A tool the agent spawns is in the
// agent's process group from its fork until its setsid (Node offers no way to close that window), so
// a held Ctrl-C (a SIGINT to the terminal's whole group every few ms) killed most removal tools before
// they ran and the agent could exit with its chains in place — with --fail-closed, refusing every new
// connection until the next start. So a small shell is started with the agent, long before any stop,
// in a session of its own: no signal sent to the agent's group reaches it or the tools it runs, and
// it ignores SIGINT/SIGTERM/SIGHUP (a service manager signals the whole cgroup at stop), a disposition
// its tools inherit. At stop the agent writes one line naming the job; the helper removes, lists
// again and repeats until nothing of ours is left, answers, and exits. When its stdin closes with no
// job (the agent was SIGKILLed) it exits having removed nothing: after a SIGKILL the rules stay, and
// fail-open/fail-closed applies until the next start, as before.
//
// Nothing to impersonate: /bin/sh with the script below as its argument (no file), spoken to over the
// two pipes the agent created at the spawn, which no other process holds.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { CHAIN_PREFIX, NFT_TABLE, type FirewallBackend } from './firewall-names.js';

/** Attempts per table, as in the agent's own removal (firewall.ts): remove, list again, repeat. */
const ATTEMPTS = 20;

// POSIX sh (dash, bash, busybox). Tools run with stdin from /dev/null so they cannot read the job pipe.
const SCRIPT = `
trap '' INT TERM HUP QUIT PIPE
echo ready
IFS= read -r job || exit 0
left=''
last=''
note_left() { left="\${left:+$left and }$1"; }

remove_nft() {
  command -v nft >/dev/null 2>&1 || return 0
  n=0
  while [ "$n" -lt ${ATTEMPTS} ]; do
    nft list table inet ${NFT_TABLE} >/dev/null 2>&1 </dev/null || return 0
    last=$(nft delete table inet ${NFT_TABLE} 2>&1 </dev/null)
    n=$((n + 1))
  done
  note_left 'nftables table ${NFT_TABLE}'
}

# Restore lines deleting the jumps to our chains, then the chains (any run's tag), as listed now.
iptables_removal() {
  listing=$("$1" -w -t mangle -S 2>/dev/null </dev/null) || return 1
  printf '%s\\n' "$listing" | while IFS= read -r line; do
    case $line in
      '-A OUTPUT '*|'-A INPUT '*)
        case \${line##* -j } in *' '*) ;; ${CHAIN_PREFIX}*) printf '%s\\n' "-D \${line#-A }" ;; esac ;;
    esac
  done
  printf '%s\\n' "$listing" | while IFS= read -r line; do
    case $line in
      '-N ${CHAIN_PREFIX}'*)
        chain=\${line#-N }
        case $chain in *' '*) ;; *) printf '%s %s\\n%s %s\\n' -F "$chain" -X "$chain" ;; esac ;;
    esac
  done
}

remove_iptables() {
  command -v "$1" >/dev/null 2>&1 || return 0
  n=0
  while [ "$n" -lt ${ATTEMPTS} ]; do
    removal=$(iptables_removal "$1") || return 0
    [ -n "$removal" ] || return 0
    last=$(printf '*mangle\\n%s\\nCOMMIT\\n' "$removal" | "$2" -w --noflush 2>&1)
    n=$((n + 1))
  done
  note_left "$1 chains"
}

case $job in
  'remove nftables') remove_nft ;;
  'remove iptables') remove_iptables iptables iptables-restore; remove_iptables ip6tables ip6tables-restore ;;
  *) echo 'refused: unknown job'; exit 2 ;;
esac
if [ -z "$left" ]; then echo removed; else printf 'left %s\\n%s\\n' "$left" "$last"; fi
`;

/** How long one helper may take for the job (tools wait for the xtables lock) before it is killed. */
const JOB_TIMEOUT_MS = 20_000;
/** How long the stop keeps starting new helpers when the one started with the agent is gone (each new
 *  one has the fork-to-setsid window again; under a held Ctrl-C about 7 in 10 survive it). */
const RESTART_WINDOW_MS = 8_000;

/** One helper process. */
class HelperProcess {
  /** True once it has said it is ready (in its own session, signals ignored); false if it ended first. */
  readonly ready: Promise<boolean>;
  /** Everything it wrote after "ready", once it has exited. */
  readonly answer: Promise<string>;
  private readonly child: ChildProcess;

  constructor() {
    this.child = spawn('/bin/sh', ['-c', SCRIPT, 'flowtop-firewall-cleanup'], { stdio: ['pipe', 'pipe', 'ignore'], detached: true });
    let out = '';
    let sayReady: (ready: boolean) => void = () => {};
    this.ready = new Promise((resolve) => (sayReady = resolve));
    this.answer = new Promise((resolve) => {
      const ended = (): void => {
        sayReady(false);
        resolve(out.startsWith('ready\n') ? out.slice('ready\n'.length) : '');
      };
      this.child.once('close', ended);
      this.child.once('error', ended); // /bin/sh could not be started
    });
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => {
      out += chunk;
      if (out.startsWith('ready\n')) sayReady(true);
    });
    this.child.stdin?.on('error', () => {}); // it died: seen as 'close'
    // An idle helper never keeps the agent's process alive; one in use does (see use()).
    this.child.unref();
    (this.child.stdin as Socket | null)?.unref();
    (this.child.stdout as Socket | null)?.unref();
  }

  /** From now on the agent's process waits for this helper (the stop awaits its answer). */
  use(): this {
    this.child.ref();
    (this.child.stdout as Socket | null)?.ref();
    return this;
  }

  /** Sends the job and waits for the answer; undefined when it died or timed out without one. */
  async run(job: string): Promise<string | undefined> {
    this.child.stdin?.end(`${job}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), JOB_TIMEOUT_MS)));
    try {
      const answer = await Promise.race([this.answer, timedOut]);
      if (answer === undefined) this.kill();
      return answer === '' ? undefined : answer;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes its stdin: it exits without doing anything. */
  dismiss(): void {
    this.child.stdin?.end();
  }

  private kill(): void {
    // its own process group: the tools it runs go with it
    try {
      if (this.child.pid !== undefined) process.kill(-this.child.pid, 'SIGKILL');
    } catch { /* gone */ }
  }
}

export interface CleanupResult {
  /** What is still there ("iptables chains", …); empty when everything of ours is gone. */
  left: string[];
  /** The last tool error, when something is left. */
  detail: string;
}

/** The firewall-removal helper, started with the agent and used once, at its stop. */
export class FirewallCleanup {
  private helper: HelperProcess | undefined;
  private used = false;

  /** Starts the helper now (a fork and exec of /bin/sh: a few ms; its readiness is awaited only at stop). */
  static start(): FirewallCleanup {
    const cleanup = new FirewallCleanup();
    cleanup.helper = new HelperProcess();
    return cleanup;
  }

  /** Removes every rule of ours of `backend` through the helper; when it is gone (killed, or killed
   *  before its setsid when started), new ones are started for RESTART_WINDOW_MS. */
  async remove(backend: FirewallBackend): Promise<CleanupResult> {
    if (this.used) throw new Error('the firewall cleanup helper has already run');
    this.used = true;
    const deadline = Date.now() + RESTART_WINDOW_MS;
    let helper = (this.helper ?? new HelperProcess()).use();
    let tries = 0;
    for (;;) {
      tries++;
      const answer = (await helper.ready) ? await helper.run(`remove ${backend}`) : undefined;
      if (answer !== undefined) return parseAnswer(answer);
      if (Date.now() > deadline) {
        throw new Error(`the cleanup helper could not be run (${tries} tries in ${RESTART_WINDOW_MS / 1000} s: each was killed or did not answer)`);
      }
      helper = new HelperProcess().use();
    }
  }

  /** Lets the helper exit without removing anything (the agent stops without rules to remove). */
  dismiss(): void {
    if (!this.used) this.helper?.dismiss();
    this.used = true;
  }
}

/** "removed", or "left WHAT" followed by the last tool error. */
function parseAnswer(answer: string): CleanupResult {
  const [first = '', ...rest] = answer.split('\n');
  if (first === 'removed') return { left: [], detail: '' };
  if (first.startsWith('left ')) return { left: [first.slice('left '.length)], detail: rest.join(' ').trim() };
  throw new Error(`the cleanup helper answered ${JSON.stringify(answer.slice(0, 200))}`);
}
