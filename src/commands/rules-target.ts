// Where `flowtop rules` reads and writes: the running agent over its socket when it keeps rules (the
// agent stays the only writer of its file), else the rules file itself through RuleStore.
import { UserError } from '../errors.js';
import type { Rule, RuleSpec } from '../protocol/messages.js';
import { RULES_FILE_VERSION, type RulesDocument } from '../rules/document.js';
import type { ImportReport } from '../rules/import/index.js';
import { ruleContentKey } from '../rules/model.js';
import { DEFAULT_POLICY } from '../rules/policy.js';
import { RemoteRules } from '../rules/remote.js';
import { DEFAULT_RULES_PATH, readRulesFile, RuleStore } from '../rules/store.js';
import { defaultSocketPath, explicitSocketPaths } from '../source/paths.js';
import { usageError, type RulesIo, type Values } from './rules-common.js';

// ---- Where the rules live ----------------------------------------------------------------------

export interface Target {
  /** For people: "the agent at /run/…" or "/etc/flowtop/rules.json". */
  where: string;
  rules(): Promise<readonly Rule[]>;
  /** `now` stamps `created` when the file is edited here; an agent uses its own clock. */
  add(spec: RuleSpec, now: number): Promise<Rule>;
  remove(id: string): Promise<Rule>;
  document(): Promise<RulesDocument>;
  import(report: ImportReport): Promise<{ added: Rule[]; duplicates: number }>;
  close(): Promise<void>;
}

export async function openTarget(values: Values, io: RulesIo): Promise<Target> {
  const sockets = explicitSocketPaths(values.socket ?? [], io.env);
  if (sockets.length > 1) throw usageError('give one --socket for rules');
  const socket = sockets[0];
  // --rules names a file to edit; only a --socket flag (not $FLOWTOP_SOCKET) overrides it.
  if (values.rules !== undefined && (values.socket ?? []).length === 0) return fileTarget(values.rules);
  const path = socket ?? defaultSocketPath();
  const outcome = await RemoteRules.connect(path);
  if (outcome.kind === 'connected') return agentTarget(outcome.client, values.rules ?? DEFAULT_RULES_PATH);
  if (socket !== undefined) {
    const why = outcome.kind === 'absent' ? `no agent listens there (${outcome.why})` : `the extension there (${outcome.hello.extension.name}) does not keep rules`;
    throw new UserError(`cannot manage rules through ${socket}: ${why}`, 'start the agent (`sudo flowtop agent`), or pass --rules PATH to edit a rules file');
  }
  return fileTarget(values.rules ?? DEFAULT_RULES_PATH);
}

async function fileTarget(path: string): Promise<Target> {
  let store: RuleStore | undefined;
  const open = async (): Promise<RuleStore> => (store ??= await RuleStore.open(path));
  return {
    where: path,
    rules: async () => (await open()).rules(),
    add: async (spec, now) => (await open()).add(spec, now),
    remove: async (id) => {
      const removed = await (await open()).remove(id);
      if (!removed) throw new UserError(`no rule with id ${id} in ${path}`, 'see the ids with `flowtop rules list`');
      return removed;
    },
    document: async () => (await open()).document(),
    import: async (report) => {
      const outcomes = await (await open()).importRules(report.rules);
      return { added: outcomes.filter((o) => o.result === 'added').map((o) => o.rule), duplicates: outcomes.filter((o) => o.result === 'duplicate').length };
    },
    close: async () => store?.close(),
  };
}

function agentTarget(client: RemoteRules, rulesPath: string): Target {
  return {
    where: `the agent at ${client.path}`,
    rules: () => client.list(),
    add: (spec) => client.add(spec),
    remove: (id) => client.remove(id),
    document: async () => {
      // The policy the agent applies, as its hello says; an extension that does not say: the file's.
      const mode = client.hello.mode;
      const policy = mode?.defaultAction !== undefined && mode.blockMode !== undefined && mode.blockUnpackaged !== undefined && mode.allowPackaged !== undefined
        ? { defaultAction: mode.defaultAction, blockMode: mode.blockMode, blockUnpackaged: mode.blockUnpackaged, allowPackaged: mode.allowPackaged }
        : await readRulesFile(rulesPath).then((r) => r.document.policy, () => ({ ...DEFAULT_POLICY }));
      return { version: RULES_FILE_VERSION, policy, rules: await client.list() };
    },
    import: async (report) => {
      const present = new Set((await client.list()).map(ruleContentKey));
      const added: Rule[] = [];
      let duplicates = 0;
      for (const rule of report.rules) {
        if (present.has(ruleContentKey(rule))) {
          duplicates++;
          continue;
        }
        const { id: _id, created: _created, hits: _hits, lastHit: _lastHit, ...spec } = rule;
        added.push(await client.add(spec));
        present.add(ruleContentKey(rule));
      }
      return { added, duplicates };
    },
    close: async () => client.close(),
  };
}
