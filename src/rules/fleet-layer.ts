// Which layer a rule belongs to (docs/rules.md, "Fleet rules"): a rule the fleet keeps in NATS for
// every host (id `fleet:all.<id>`), one it keeps for this host (`fleet:host.<host>.<id>`), or a rule
// of this host's own rules file. The id says it: the agent names fleet rules after their bucket key.
export type RuleLayer = 'fleet-host' | 'fleet-all' | 'local';

export const FLEET_ID_PREFIX = 'fleet:';

export function ruleLayer(id: string): RuleLayer {
  if (!id.startsWith(FLEET_ID_PREFIX)) return 'local';
  return id.startsWith(`${FLEET_ID_PREFIX}host.`) ? 'fleet-host' : 'fleet-all';
}

export function isFleetRuleId(id: string): boolean {
  return id.startsWith(FLEET_ID_PREFIX);
}
