// A protocol v1 client for tests: a real Unix socket connection that records every message and lets
// a test wait for one matching a condition (with a timeout, never a sleep).
import { connect, type Socket } from 'node:net';
import { decodeExtensionMessage, encodeMessage, LineSplitter } from '../../src/protocol/codec.js';
import type { ClientMessage, ExtensionMessage } from '../../src/protocol/messages.js';

export class TestClient {
  readonly messages: ExtensionMessage[] = [];
  readonly problems: string[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly splitter = new LineSplitter();

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const event of this.splitter.push(chunk)) {
        if (event.kind !== 'line') {
          this.problems.push(event.kind);
          continue;
        }
        const decoded = decodeExtensionMessage(event.line);
        if (decoded.ok) this.messages.push(decoded.message);
        else this.problems.push(decoded.error.message);
      }
      for (const wake of [...this.waiters]) wake();
    });
  }

  static async open(path: string, subscribe = true): Promise<TestClient> {
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new TestClient(socket);
    if (subscribe) client.send({ type: 'subscribe', protocol: 1, client: { name: 'demo-test', version: '1' } });
    return client;
  }

  send(message: ClientMessage): void {
    this.socket.write(encodeMessage(message));
  }

  /** The first message (at index ≥ from) that matches; waits for it up to timeoutMs. */
  waitFor<T extends ExtensionMessage>(match: (m: ExtensionMessage) => m is T, timeoutMs?: number, from?: number): Promise<T>;
  waitFor(match: (m: ExtensionMessage) => boolean, timeoutMs?: number, from?: number): Promise<ExtensionMessage>;
  waitFor(match: (m: ExtensionMessage) => boolean, timeoutMs = 5000, from = 0): Promise<ExtensionMessage> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.messages.slice(from).find(match);
        if (!found) return false;
        this.waiters.delete(wake);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const wake = (): void => void check();
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        const seen = this.messages.map((m) => (m.type === 'flow' ? `flow ${m.flow.id}` : 'id' in m ? `${m.type} ${m.id}` : m.type));
        reject(new Error(`no matching message within ${timeoutMs} ms; seen: ${seen.slice(-40).join(', ')}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(wake);
    });
  }

  /** Waits until `condition()` holds, checking after every message that arrives. */
  until(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        if (!condition()) return;
        this.waiters.delete(wake);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        reject(new Error(`${what} not reached within ${timeoutMs} ms (${this.messages.length} messages received)`));
      }, timeoutMs);
      this.waiters.add(wake);
      wake();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export const isType =
  <K extends ExtensionMessage['type']>(type: K, test: (m: Extract<ExtensionMessage, { type: K }>) => boolean = () => true) =>
  (m: ExtensionMessage): m is Extract<ExtensionMessage, { type: K }> =>
    m.type === type && test(m as Extract<ExtensionMessage, { type: K }>);
