// Shared copies of strings that repeat across flows (process tokens, local and remote addresses).
// Each decoded message brings its own copy of every string; with 100,000 flows from a few hundred
// processes, one copy per distinct value saves ~10 MB of heap.
import type { FlowRecord } from '../protocol/messages.js';

const LIMIT = 50_000;
const strings = new Map<string, string>();

export function intern(s: string): string {
  const known = strings.get(s);
  if (known !== undefined) return known;
  // Bounded: when full, start over (values already stored keep their copy).
  if (strings.size >= LIMIT) strings.clear();
  strings.set(s, s);
  return s;
}

/** The same record with its repeating strings replaced by shared equal copies (the record is the
 *  decoder's own, so swapping equal strings in place changes nothing anyone can see). */
export function shareStrings(flow: FlowRecord): FlowRecord {
  if (flow.token !== undefined) flow.token = intern(flow.token);
  if (flow.appToken !== undefined) flow.appToken = intern(flow.appToken);
  flow.local.address = intern(flow.local.address);
  flow.remote.address = intern(flow.remote.address);
  return flow;
}
