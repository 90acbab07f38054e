// A blocked conversation is one flow, however many packets it sends. A dropped UDP datagram leaves no
// connection-tracking entry, so the sender's next datagram is NEW again and comes back to the queue
// (as does a retried SYN of a blocked connect): decided by a rule in a queue thread, each was
// published as a new flow, and a blocked sender filled the table with a row per datagram. Here the
// later packets of a conversation (one local socket and one remote end) only count on the first
// flow, which is published again with the count, at most every `publishMs`.
import type { FlowRecord } from '../protocol/messages.js';

interface Conversation {
  flow: FlowRecord;
  packets: number;
  /** Forgotten after this time without another packet. */
  until: number;
}

export interface BlockedConversationOptions {
  /** How long a conversation is remembered after its last packet. */
  windowMs?: number;
  /** Most conversations remembered; the longest quiet ones go first. */
  max?: number;
  /** Longest wait before a new count is published. */
  publishMs?: number;
  now?: () => number;
}

function conversationKey(flow: Pick<FlowRecord, 'protocol' | 'local' | 'remote'>): string {
  return `${flow.protocol}|${flow.local.address}|${flow.local.port}|${flow.remote.address}|${flow.remote.port}`;
}

export class BlockedConversations {
  private readonly conversations = new Map<string, Conversation>();
  private readonly dirty = new Set<Conversation>();
  private timer: NodeJS.Timeout | undefined;
  private readonly windowMs: number;
  private readonly max: number;
  private readonly publishMs: number;
  private readonly now: () => number;

  constructor(private readonly publish: (flow: FlowRecord) => void, options: BlockedConversationOptions = {}) {
    this.windowMs = options.windowMs ?? 30_000;
    this.max = options.max ?? 4096;
    this.publishMs = options.publishMs ?? 500;
    this.now = options.now ?? Date.now;
  }

  /** A flow was blocked (published by the caller): later packets of its conversation count on it. */
  begin(flow: FlowRecord, packets = 1): void {
    const key = conversationKey(flow);
    this.conversations.delete(key);
    this.conversations.set(key, { flow, packets, until: this.now() + this.windowMs });
    this.prune();
  }

  /** Another packet blocked: true when it belongs to a known conversation (counted; publish nothing),
   *  false when it starts a new one. */
  count(flow: Pick<FlowRecord, 'protocol' | 'local' | 'remote'>): boolean {
    const key = conversationKey(flow);
    const c = this.conversations.get(key);
    const now = this.now();
    if (!c || c.until <= now) return false;
    c.packets++;
    c.until = now + this.windowMs;
    // Most recently active last, so pruning takes the quietest first.
    this.conversations.delete(key);
    this.conversations.set(key, c);
    this.dirty.add(c);
    this.timer ??= setTimeout(() => this.flush(), this.publishMs);
    this.timer.unref?.();
    return true;
  }

  /** Publishes the new counts now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const c of this.dirty) this.publish({ ...c.flow, packets: c.packets });
    this.dirty.clear();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dirty.clear();
    this.conversations.clear();
  }

  private prune(): void {
    const now = this.now();
    for (const [key, c] of this.conversations) {
      if (c.until > now && this.conversations.size <= this.max) break;
      this.conversations.delete(key);
      this.dirty.delete(c);
    }
  }
}
