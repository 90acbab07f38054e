// flowtop rules test — "what would happen to this flow, and why": the rule that decides a described
// flow (or the policy, when none matches), from a rules file or a running agent. It decides with the
// agent's own matcher and policy (src/rules/matcher.ts, policy.ts), so its answer is the agent's.
import { UsageError, UserError } from '../errors.js';
import type { Attribution, Trust } from '../attribution/types.js';
import type { Direction, HelloMessage, Rule, TransportProtocol } from '../protocol/messages.js';
import { canonicalIp } from '../rules/ip.js';
import { matchRule, type FlowFacts } from '../rules/matcher.js';
import { DIRECTIONS, PROTOCOLS } from '../protocol/messages.js';
import { describeRule, singleLine } from '../rules/model.js';
import { normalizeHostName } from '../rules/schema.js';
import { decideByPolicy, DEFAULT_POLICY, type Policy, type PolicyDecision } from '../rules/policy.js';
import { RemoteRules } from '../rules/remote.js';
import { DEFAULT_RULES_PATH, readRulesFile } from '../rules/store.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';

export const TEST_FLAGS = ['path', 'identity', 'trust', 'host', 'address', 'port', 'protocol', 'direction', 'json'];

export const TEST_HELP = `  flowtop rules test [--path PATH] [--identity ID] [--trust secure|insecure|gone|pending]
                     [--host NAME] [--address IP] [--port N] [--protocol tcp|udp|icmp|other]
                     [--direction outbound|inbound] [--json]
                                              which rule (or the policy) would decide this flow, and
                                              why; ID as \`flowtop inspect PID\` prints it (sha256:HEX,
                                              package:NAME:/PATH, or a macOS requirement). With --path
                                              or --identity the process counts as verified (--trust
                                              says otherwise); --port is needed for tcp and udp
`;

/** The flags `rules test` reads (as parsed by the rules command). */
export interface TestValues {
  path?: string | undefined;
  identity?: string | undefined;
  trust?: string | undefined;
  host?: string | undefined;
  address?: string | undefined;
  port?: string | undefined;
  protocol?: string | undefined;
  direction?: string | undefined;
  json?: boolean | undefined;
  rules?: string | undefined;
  socket?: string[] | undefined;
}

export interface TestIo {
  stdout: (text: string) => void;
  now: () => number;
  env: NodeJS.ProcessEnv;
}

/** What decides the flow: a rule, or the policy when none matches. */
export interface TestOutcome {
  action: 'allow' | 'block';
  blockMode?: 'drop' | 'reject';
  decidedBy: 'rule' | 'policy';
  rule?: Rule;
  policy?: Pick<PolicyDecision, 'by' | 'immediate' | 'reason'>;
  flow: FlowFacts;
  /** Where the rules came from: "the agent at …" or the rules file. */
  source: string;
}

const TRUSTS: readonly Trust[] = ['secure', 'insecure', 'gone', 'pending'];

function usage(message: string): UsageError {
  return new UsageError(message, 'run `flowtop rules --help` for the usage');
}

function oneOf<T extends string>(flag: string, value: string | undefined, options: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((options as readonly string[]).includes(value)) return value as T;
  throw usage(`--${flag} ${value}: expected ${options.join(', ')}`);
}

/** The flow's facts from the flags; every value is checked as a rule's would be. */
export function flowFromFlags(values: TestValues): FlowFacts {
  const protocol = oneOf<TransportProtocol>('protocol', values.protocol, PROTOCOLS, 'tcp');
  const direction = oneOf<Direction>('direction', values.direction, DIRECTIONS, 'outbound');
  const process = values.path !== undefined || values.identity !== undefined;
  const trust = values.trust === undefined ? (process ? 'secure' : undefined) : oneOf<Trust>('trust', values.trust, TRUSTS, 'secure');
  let remotePort = 0;
  if (values.port !== undefined) {
    if (!/^\d{1,5}$/.test(values.port) || Number(values.port) > 65535) throw usage(`--port ${values.port}: expected a port number (0-65535)`);
    remotePort = Number(values.port);
  } else if (protocol === 'tcp' || protocol === 'udp') {
    throw usage(`give --port: a ${protocol} flow has a remote port, and rules may name it`);
  }
  let remoteAddress = '';
  if (values.address !== undefined) {
    const canonical = canonicalIp(values.address);
    if (!canonical) throw usage(`--address ${values.address}: expected an IPv4 or IPv6 address`);
    remoteAddress = canonical;
  }
  const facts: FlowFacts = { protocol, direction, remoteAddress, remotePort };
  if (values.host !== undefined) {
    const host = normalizeHostName(values.host);
    if (!host) throw usage(`--host ${values.host}: expected a host name`);
    facts.remoteHost = host;
  }
  if (values.address === undefined && values.host === undefined) throw usage('give --host, --address or both: the remote end of the flow');
  if (trust !== undefined) facts.trust = trust;
  if (values.path !== undefined) {
    if (!values.path.startsWith('/')) throw usage(`--path ${values.path}: expected an absolute executable path`);
    facts.path = values.path;
  }
  if (values.identity !== undefined) facts.identity = /^[0-9a-fA-F]{64}$/.test(values.identity) ? `sha256:${values.identity.toLowerCase()}` : values.identity;
  return facts;
}

/** The decision for these facts under these rules and policy (pure). */
export function decide(rules: readonly Rule[], policy: Policy, flow: FlowFacts, now: number, source: string): TestOutcome {
  const rule = matchRule(rules, flow, now);
  if (rule) {
    const outcome: TestOutcome = { action: rule.action, decidedBy: 'rule', rule, flow, source };
    if (rule.action === 'block') outcome.blockMode = rule.blockMode ?? 'drop';
    return outcome;
  }
  // The policy sees what an attribution with these facts would say; no signer is known.
  const attribution: Attribution | undefined = flow.trust === undefined ? undefined : {
    trust: flow.trust,
    ...(flow.path !== undefined ? { path: flow.path } : {}),
    ...(flow.identity !== undefined ? { identity: flow.identity } : {}),
  };
  const decision = decideByPolicy(attribution, policy);
  const outcome: TestOutcome = { action: decision.action, decidedBy: 'policy', policy: { by: decision.by, immediate: decision.immediate, reason: decision.reason }, flow, source };
  if (decision.blockMode) outcome.blockMode = decision.blockMode;
  return outcome;
}

async function loadRules(values: TestValues, io: TestIo): Promise<{ rules: readonly Rule[]; policy: Policy; source: string }> {
  const fromFile = async (path: string) => {
    const { document, exists } = await readRulesFile(path);
    if (!exists) throw new UserError(`no rules file at ${path}`, 'pass --rules PATH, or start the agent and test against it');
    return { rules: document.rules, policy: document.policy, source: path };
  };
  // As for the other rules commands: --rules alone names a file; otherwise ask the agent first.
  if (values.rules !== undefined && (values.socket ?? []).length === 0) return fromFile(values.rules);
  const sockets = explicitSocketPaths(values.socket ?? [], io.env);
  if (sockets.length > 1) throw usage('give one --socket for rules');
  const path = sockets[0] ?? defaultSocketPath();
  const outcome = await RemoteRules.connect(path);
  if (outcome.kind === 'connected') {
    const client = outcome.client;
    try {
      const rules = await client.list();
      return { rules, policy: await agentPolicy(client.hello.mode, values.rules), source: `the agent at ${client.path}` };
    } finally {
      client.close();
    }
  }
  if (sockets[0] !== undefined) {
    const why = outcome.kind === 'absent' ? `no agent listens there (${outcome.why})` : `the extension there (${outcome.hello.extension.name}) does not keep rules`;
    throw new UserError(`cannot test against ${sockets[0]}: ${why}`, 'start the agent, or pass --rules PATH to test a rules file');
  }
  return fromFile(values.rules ?? DEFAULT_RULES_PATH);
}

/** The policy the agent applies, as its hello says; a part it does not say comes from its rules file
 *  when that can be read, else the default. */
async function agentPolicy(mode: HelloMessage['mode'], rulesPath: string | undefined): Promise<Policy> {
  const file = await readRulesFile(rulesPath ?? DEFAULT_RULES_PATH).then((r) => r.document.policy, () => ({ ...DEFAULT_POLICY }));
  return {
    defaultAction: mode?.defaultAction ?? file.defaultAction,
    blockMode: mode?.blockMode ?? file.blockMode,
    blockUnpackaged: mode?.blockUnpackaged ?? file.blockUnpackaged,
    allowPackaged: mode?.allowPackaged ?? file.allowPackaged,
  };
}

export async function rulesTest(values: TestValues, io: TestIo): Promise<number> {
  const flow = flowFromFlags(values);
  const { rules, policy, source } = await loadRules(values, io);
  const outcome = decide(rules, policy, flow, io.now(), source);
  io.stdout(values.json ? `${JSON.stringify(outcome, null, 2)}\n` : formatOutcome(outcome, io.now()));
  return 0;
}

function describeFlow(flow: FlowFacts): string {
  const who = flow.trust === undefined ? 'an unknown process'
    : `${flow.path ?? flow.identity ?? 'a process'} (${flow.trust}${flow.path !== undefined && flow.identity !== undefined ? `, ${flow.identity.length > 40 ? `${flow.identity.slice(0, 39)}…` : flow.identity}` : ''})`;
  const remote = [flow.remoteHost, flow.remoteAddress].filter(Boolean).join(' ');
  const port = flow.protocol === 'tcp' || flow.protocol === 'udp' ? ` port ${flow.remotePort}` : '';
  return `${who} → ${remote}${port} ${flow.protocol} ${flow.direction}`;
}

export function formatOutcome(outcome: TestOutcome, now: number): string {
  const action = outcome.action === 'block' && outcome.blockMode === 'reject' ? 'reject' : outcome.action;
  const lines = [`${action.toUpperCase()}  ${describeFlow(outcome.flow)}`];
  if (outcome.rule) {
    lines.push(`  decided by rule ${outcome.rule.id}: ${describeRule(outcome.rule, now)}`);
    if (outcome.rule.note) lines.push(`  note: ${singleLine(outcome.rule.note)}`);
  } else if (outcome.policy) {
    lines.push(`  decided by the policy (${outcome.policy.by}): ${outcome.policy.reason}`);
    if (!outcome.policy.immediate) lines.push('  the flow waits for a person first; this applies when nobody answers in time');
  }
  lines.push(`  rules: ${outcome.source}`);
  return `${lines.join('\n')}\n`;
}
