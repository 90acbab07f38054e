// Which machine each flow is on, when flows come from more than one: a fleet host is its source; any
// other extension names its machine in its hello. Pure: reads source infos, nothing else.
import type { SourceInfo } from './types.js';

/** The machine of a source's flows (undefined: not known yet, or a fleet's server). */
export function sourceHost(info: SourceInfo | undefined): string | undefined {
  if (!info || info.fleet?.role === 'server') return undefined;
  return info.fleet?.role === 'host' ? info.id : info.hello?.host;
}

/** Whether the views show which host each row is on: always for a fleet, else when sources name more
 *  than one machine. */
export function showsHosts(sources: Iterable<SourceInfo>): boolean {
  const hosts = new Set<string>();
  for (const s of sources) {
    if (s.fleet) return true;
    const h = sourceHost(s);
    if (h !== undefined) hosts.add(h);
  }
  return hosts.size > 1;
}

/** Every machine name the sources know (for `host:NAME` in the filter). */
export function knownHosts(sources: Iterable<SourceInfo>): Set<string> {
  const out = new Set<string>();
  for (const s of sources) {
    const h = sourceHost(s);
    if (h !== undefined) out.add(h.toLowerCase());
  }
  return out;
}

export interface FleetLine {
  /** The server's source (its status, its label). */
  server: SourceInfo;
  hosts: number;
  connected: number;
  /** Hosts gone (stopped announcing themselves), by name. */
  gone: string[];
}

/** One line per fleet server in the header instead of one per host. */
export function fleetLines(sources: readonly SourceInfo[]): FleetLine[] {
  const lines: FleetLine[] = [];
  for (const server of sources) {
    if (server.fleet?.role !== 'server') continue;
    const hosts = sources.filter((s) => s.fleet?.role === 'host' && s.fleet.label === server.fleet!.label);
    lines.push({
      server,
      hosts: hosts.length,
      connected: hosts.filter((h) => h.status.state === 'connected').length,
      gone: hosts.filter((h) => h.status.state !== 'connected').map((h) => h.id),
    });
  }
  return lines;
}

/** Lines the header gives to sources: one per extension, one per fleet. */
export function headerSourceLines(sources: Iterable<SourceInfo>): number {
  let n = 0;
  for (const s of sources) if (!s.fleet || s.fleet.role === 'server') n++;
  return n;
}
