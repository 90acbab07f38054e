// Traffic summed per minute for the writer's buckets: per program and user, and per remote (its
// host name, else its address), until they are taken for a batch.
import type { HostBucket, ProcessBucket, ProcessFacts } from './batch.js';

export class TrafficSums {
  private processes = new Map<number, Map<string, ProcessBucket>>();
  private hosts = new Map<number, Map<string, HostBucket>>();
  /** The minute most additions go to, and its maps (one lookup less per addition). */
  private minute = Number.NaN;
  private minuteProcesses?: Map<string, ProcessBucket>;
  private minuteHosts?: Map<string, HostBucket>;

  get empty(): boolean {
    return this.processes.size === 0 && this.hosts.size === 0;
  }

  /** `key`: the program and user (a flow's bucketKey); `facts`: its program. */
  add(minute: number, key: string, facts: ProcessFacts, uid: number | undefined, remote: string, rx: number, tx: number, flows: number): void {
    if (minute !== this.minute) this.select(minute);
    const processes = this.minuteProcesses!;
    const p = processes.get(key);
    if (p) {
      p.rx += rx; p.tx += tx; p.flows += flows;
    } else {
      processes.set(key, { minute, ...(facts.key !== undefined ? { key: facts.key, facts } : {}), uid: uid ?? -1, rx, tx, flows });
    }
    const hosts = this.minuteHosts!;
    const h = hosts.get(remote);
    if (h) {
      h.rx += rx; h.tx += tx; h.flows += flows;
    } else {
      hosts.set(remote, { minute, host: remote, rx, tx, flows });
    }
  }

  /** All sums so far, as buckets; the sums start again from nothing. */
  take(): { processes: ProcessBucket[]; hosts: HostBucket[] } {
    const taken = {
      processes: [...this.processes.values()].flatMap((m) => [...m.values()]),
      hosts: [...this.hosts.values()].flatMap((m) => [...m.values()]),
    };
    this.processes = new Map();
    this.hosts = new Map();
    this.minute = Number.NaN;
    this.minuteProcesses = this.minuteHosts = undefined;
    return taken;
  }

  private select(minute: number): void {
    let processes = this.processes.get(minute);
    if (!processes) this.processes.set(minute, processes = new Map());
    let hosts = this.hosts.get(minute);
    if (!hosts) this.hosts.set(minute, hosts = new Map());
    this.minute = minute;
    this.minuteProcesses = processes;
    this.minuteHosts = hosts;
  }
}
