// The attribution of a flow from another machine (a fleet host): this client cannot verify a token
// made there (its PIDs and pidfds mean nothing here), so it never resolves one. What it shows is the
// code identity the host's agent established for that exact process instance (flow.identity), said to
// be the agent's word; a flow without one is shown as not identified, with why.
import type { Attribution } from '../attribution/types.js';
import type { FlowRecord } from '../protocol/messages.js';

export function agentAttribution(flow: FlowRecord, host: string): Attribution {
  const id = flow.identity;
  const hints = { ...(flow.pid !== undefined ? { pid: flow.pid } : {}), ...(flow.uid !== undefined ? { uid: flow.uid } : {}) };
  if (!id) {
    return {
      trust: 'insecure',
      ...hints,
      reason: {
        call: 'agent identity',
        message: flow.ownerError
          ? `the agent on ${host} could not find the owner: ${flow.ownerError}`
          : `the agent on ${host} established no code identity for this flow, and this client cannot check another machine's processes`,
      },
    };
  }
  const path = id.path ?? (id.kind === 'package' ? id.value : undefined);
  const name = path ? path.slice(path.lastIndexOf('/') + 1) || path : id.kind === 'sha256' ? `sha256:${id.value.slice(0, 12)}` : id.value;
  const identity = id.kind === 'sha256' ? `sha256:${id.value}` : id.kind === 'package' ? `package:${id.package ?? ''}:${id.value}` : id.value;
  return {
    trust: 'secure',
    ...hints,
    name,
    ...(path ? { path } : {}),
    identity,
    ...(id.kind === 'sha256' ? { sha256: id.value } : {}),
    signer:
      id.kind === 'package'
        ? { kind: 'package', label: `package ${id.package ?? '?'} (by its agent)`, ...(id.package ? { package: id.package } : {}) }
        : id.kind === 'sha256'
          ? { kind: 'unpackaged', label: 'no package (hash by its agent)' }
          : { kind: 'unknown', label: `verified by its agent on ${host}` },
  };
}
