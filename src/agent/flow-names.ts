// Host names for flows from the DNS answers the agent let through: a flow's remote address is named
// by what the program looked up, when an answer gave it (its DNS-answer queue's copies; see dns-worker.ts).
import type { FlowRecord, RemoteHost } from '../protocol/messages.js';
import { HostNameMap } from '../hostnames/index.js';
import { dnsMessagesOf } from './dns-packet.js';
import type { DnsAnswers } from './io.js';

export class FlowNames {
  private readonly names = new HostNameMap();
  /** The DNS thread, once running; without it no flow is named. */
  answers?: DnsAnswers;

  /** Answer packets copied by the DNS thread. */
  learn(packets: Uint8Array[]): void {
    for (const packet of packets) {
      for (const message of dnsMessagesOf(Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength))) this.names.addResponse(message);
    }
  }

  /** Answers the DNS thread has posted but this thread has not handled yet. Messages from different
   *  threads are not delivered in the order they were posted: an answer is posted before it is
   *  released to the program, so reading them here, before naming a flow, never misses its name. */
  drain(): void {
    this.answers?.drain();
  }

  /** The name the program looked up for the flow's remote address, if a DNS answer gave one. The
   *  agent's flows carry canonical addresses (formatted from the packet's bytes). */
  name(flow: FlowRecord): void {
    if (flow.remoteHost) return;
    const host = this.hostOf(flow.remote.address);
    if (host) flow.remoteHost = host;
  }

  /** The name for a canonical remote address, as `name` would give it. */
  hostOf(address: string): RemoteHost | undefined {
    const entry = this.names.lookupCanonical(address);
    return entry ? { name: entry.name, source: entry.source } : undefined;
  }
}
