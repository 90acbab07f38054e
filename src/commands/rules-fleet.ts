// `flowtop rules list|add|rm --nats URL [--all | --host-name NAME]`: the fleet's rules, kept in the NATS
// rules bucket (docs/fleet.md): `all.<id>` for every host, `host.<host>.<id>` for one. Agents watch the
// bucket and apply a change at once; a rule is shown here under its key (agents call it fleet:<key>).
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { UserError } from '../errors.js';
import type { Rule } from '../protocol/messages.js';
import { createRule, newRuleId } from '../rules/model.js';
import { FLEET_ID_PREFIX } from '../rules/fleet-layer.js';
import { natsLinkConfig, type NatsFlagValues } from '../fleet/connect-options.js';
import { connectNats } from '../fleet/nats-connect.js';
import { fleetRuleFrom, fleetRuleKey } from '../fleet/fleet-rules.js';
import { HOST_NAME_PATTERN, fleetNames } from '../fleet/wire.js';
import { usageError, type Values } from './rules-common.js';
import type { Target } from './rules-target.js';

/** Which fleet rules: every host's (`--all`), one host's (`--host-name`), or (list, rm) all of them. */
type Scope = { all: true } | { host: string } | undefined;

export function fleetScope(values: Values, command: string): Scope {
  if (values.all && values['host-name'] !== undefined) throw usageError('--all and --host-name contradict each other: pick one');
  const host = values['host-name'];
  if (host !== undefined && !HOST_NAME_PATTERN.test(host)) throw usageError(`--host-name "${host}": 1–64 letters, digits, "_" or "-"`);
  if (command === 'add' && !values.all && host === undefined) throw usageError('a fleet rule is for --all hosts or for one (--host-name NAME)');
  return values.all ? { all: true } : host !== undefined ? { host } : undefined;
}

export async function fleetTarget(values: Values & NatsFlagValues, command: string): Promise<Target> {
  const config = natsLinkConfig('rules', values);
  if (!config) throw usageError('--nats URL is needed for fleet rules');
  const scope = fleetScope(values, command);
  if (command !== 'list' && command !== 'add' && command !== 'rm') throw usageError(`\`flowtop rules ${command}\` is not for fleet rules (list, add and rm are)`);
  const names = fleetNames(config.prefix);
  let nc: NatsConnection;
  try {
    nc = await connectNats(config, 'flowtop rules', { maxReconnectAttempts: 0, timeoutMs: 3000 });
  } catch (error) {
    throw new UserError(`cannot reach NATS at ${config.servers.join(', ')}: ${error instanceof Error ? error.message : String(error)}`, 'check --nats and the credentials (docs/fleet.md)');
  }
  const where = `fleet rules in ${names.rulesBucket} at ${config.servers.join(', ')}${scope ? ('all' in scope ? ' (all hosts)' : ` (host ${scope.host})`) : ''}`;
  let bucket: KV | undefined;
  const kv = async (): Promise<KV> => (bucket ??= await new Kvm(nc).create(names.rulesBucket, { history: 5 }));
  const inScope = (key: string): boolean => !scope || ('all' in scope ? key.startsWith('all.') : key.startsWith(`host.${scope.host}.`));
  const read = async (): Promise<Array<{ key: string; rule: Rule }>> => {
    const out: Array<{ key: string; rule: Rule }> = [];
    const store = await kv();
    for await (const key of await store.keys()) {
      if (!inScope(key)) continue;
      const e = await store.get(key);
      if (!e || e.operation !== 'PUT') continue;
      const host = /^host\.([^.]+)\./.exec(key)?.[1] ?? 'any';
      const rule = fleetRuleFrom(key, e.string(), host);
      if (typeof rule !== 'string') out.push({ key, rule: { ...rule, id: key } });
    }
    return out.sort((a, b) => a.key.localeCompare(b.key));
  };
  return {
    where,
    rules: async () => (await read()).map((r) => r.rule),
    add: async (spec, now) => {
      if (spec.duration.kind === 'process' || spec.duration.kind === 'once') throw usageError('a fleet rule lasts always or --until a time');
      const id = newRuleId();
      const key = fleetRuleKey(scope!, id);
      const rule = createRule(spec, now, id);
      await (await kv()).put(key, JSON.stringify(rule));
      return { ...rule, id: key };
    },
    remove: async (given) => {
      // The key, the id agents show (fleet:<key>), or a bare rule id with --all / --host-name.
      const bare = given.startsWith(FLEET_ID_PREFIX) ? given.slice(FLEET_ID_PREFIX.length) : given;
      const key = /^(all|host)\./.test(bare) ? bare : scope ? fleetRuleKey(scope, bare) : undefined;
      if (!key) throw usageError(`which fleet rule? give its key (all.${bare} or host.NAME.${bare}), or --all / --host-name`);
      const found = (await read()).find((r) => r.key === key);
      if (!found) throw new UserError(`no fleet rule ${key} in ${names.rulesBucket}`, 'see them with `flowtop rules list --nats URL`');
      await (await kv()).delete(key);
      return found.rule;
    },
    document: async () => {
      throw usageError('export is not for fleet rules');
    },
    import: async () => {
      throw usageError('import is not for fleet rules');
    },
    close: async () => {
      await nc.close();
    },
  };
}
