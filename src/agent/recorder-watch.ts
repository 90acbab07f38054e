// The socket recorder can be taken away under a running agent: its programs are attached to a cgroup,
// and anyone with CAP_BPF can detach them (an agent started on the same cgroup once removed the live
// programs as "stale"). From then on connects go unrecorded, owners are found by /proc scans (which
// name the process holding a socket, not the program that connected), and an agent that kept saying
// `bpf-cookie` would be telling the user something false. Checked a few times a second: the programs
// are attached again at once and the agent says it happened; if the kernel refuses, the agent says
// it now finds owners by /proc scans.
import type { SocketRecorder } from '../native/linux/bpf.js';
import type { AttributionMethod } from './types.js';

export interface RecorderState {
  method: AttributionMethod;
  /** What happened to the recorder, for the status (undefined while nothing did). */
  note?: string;
}

export class RecorderWatch {
  private lostWhy?: string;
  private detachments = 0;
  private note?: string;

  constructor(private readonly recorder: Pick<SocketRecorder, 'detachedHooks' | 'reattach'>, private readonly say: (line: string) => void) {}

  check(now = new Date()): RecorderState {
    const missing = this.recorder.detachedHooks();
    if (missing.length === 0) {
      if (this.lostWhy !== undefined) {
        this.lostWhy = undefined;
        this.say('the socket recorder is attached again: owners come from connect records again');
      }
      return this.state();
    }
    this.detachments++;
    const when = now.toISOString().slice(11, 19);
    try {
      this.recorder.reattach(missing);
      this.lostWhy = undefined;
      this.note = `recorder programs detached by someone else ${this.detachments === 1 ? 'once' : `${this.detachments} times`} (last ${when} UTC: ${missing.join(', ')}) and attached again`;
      this.say(`the socket recorder's programs (${missing.join(', ')}) were detached from the cgroup by someone else (another agent on the same cgroup?): attached them again; connections made meanwhile had no connect record and are not secure`);
    } catch (error) {
      const why = (error as Error).message.split('\n')[0]!;
      if (this.lostWhy === undefined) this.say(`the socket recorder's programs (${missing.join(', ')}) were detached from the cgroup and cannot be attached again (${why}): owners are now found by /proc scans, and such flows are never secure`);
      this.lostWhy = why;
      this.note = `recorder programs detached at ${when} UTC (${missing.join(', ')}) and not attached again (${why}): owners found by /proc scans, never secure`;
    }
    return this.state();
  }

  private state(): RecorderState {
    return { method: this.lostWhy === undefined ? 'bpf-cookie' : 'inode-scan', ...(this.note !== undefined ? { note: this.note } : {}) };
  }
}
