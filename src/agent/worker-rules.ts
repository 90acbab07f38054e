// What the queue threads are told: the rules they may match themselves, and the verified code identity
// of executable files, so that identity rules are matched there too once the main thread has verified
// the file a program runs from.
import type { Attribution } from '../attribution/types.js';
import type { Rule } from '../protocol/messages.js';
import { flowIdentityFromKey } from '../rules/model.js';
import type { MainToWorker } from './types.js';

export interface WorkerRules {
  message: MainToWorker;
  /** Whether any enabled rule is keyed by code identity: flows then need their attribution resolved
   *  before the rules can be matched. */
  identityRules: boolean;
}

export function workerRules(all: readonly Rule[]): WorkerRules {
  const identityRules = all.some((r) => r.enabled && r.identity !== undefined);
  // The worker knows no host names: while a rule names a host or domain, any rule it matched might
  // be beaten by that more specific one, so every flow is matched here (with its remoteHost).
  if (all.some((r) => r.enabled && (r.endpoint?.host !== undefined || r.endpoint?.domain !== undefined))) return { message: { type: 'rules', rules: [] }, identityRules };
  // `once` rules are matched here only (store.match uses them up); the worker gets the others.
  return { message: { type: 'rules', rules: all.filter((r) => r.duration.kind !== 'once') }, identityRules };
}

/** Executable file keys whose identity the workers were told (at most `max`, then forgotten). */
export class TaughtIdentities {
  private readonly taught = new Set<string>();

  constructor(private readonly max = 4096) {}

  /** For a secure identity verified for exactly the file the worker saw (same dev, inode, size,
   *  mtime, ctime): the message that lets the workers match identity rules for that file themselves,
   *  unless they were told already. */
  teach(exeKey: string | undefined, attribution: Attribution | undefined): MainToWorker | undefined {
    if (!exeKey || attribution?.trust !== 'secure' || !attribution.identity || attribution.exeKey !== exeKey) return undefined;
    if (this.taught.has(exeKey)) return undefined;
    if (this.taught.size >= this.max) this.taught.clear();
    this.taught.add(exeKey);
    const flow = flowIdentityFromKey(attribution.identity, attribution.path);
    return { type: 'identity', exeKey, known: { identity: attribution.identity, ...(attribution.path !== undefined ? { path: attribution.path } : {}), ...(flow ? { flow } : {}) } };
  }
}
