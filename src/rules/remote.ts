// A one-shot rules client for a running extension (docs/protocol.md): connect, read `hello`,
// `subscribe`, then send rule-add / rule-remove / rules-list with a `ref` and wait for the reply that
// carries it. Used by `flowtop rules` so a running agent stays the only writer of its rules file.
import { connect, type Socket } from 'node:net';
import { UserError } from '../errors.js';
import { decodeExtensionMessage, encodeMessage, frameError, LineSplitter } from '../protocol/codec.js';
import type { ClientMessage, ExtensionMessage, HelloMessage, Rule, RuleSpec } from '../protocol/messages.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';

export interface RemoteRulesOptions {
  /** How long to wait for the connection and for each answer (ms). Default 5000. */
  timeoutMs?: number;
  clientName?: string;
  clientVersion?: string;
}

type Outcome =
  | { kind: 'connected'; client: RemoteRules }
  /** Nothing listens there (no socket file, or refused): the caller edits the rules file instead. */
  | { kind: 'absent'; why: string }
  /** An extension answers but does not keep rules (e.g. a recording): the caller edits the file. */
  | { kind: 'no-rules'; hello: HelloMessage };

interface Waiter {
  accept: (msg: ExtensionMessage) => boolean;
  resolve: (msg: ExtensionMessage) => void;
  reject: (error: Error) => void;
}

export class RemoteRules {
  private readonly waiters = new Set<Waiter>();
  private closedError: Error | undefined;
  private serial = 0;

  private constructor(private readonly socket: Socket, readonly path: string, readonly hello: HelloMessage, private readonly timeoutMs: number) {}

  /** Connects and subscribes. Resolves `absent` when no extension listens at `path`. */
  static async connect(path: string, options: RemoteRulesOptions = {}): Promise<Outcome> {
    const timeoutMs = options.timeoutMs ?? 5000;
    let socket: Socket;
    try {
      socket = await openSocket(path, timeoutMs);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ENOTSOCK') return { kind: 'absent', why: `${code} on ${path}` };
      if (code === 'EACCES' || code === 'EPERM') {
        throw new UserError(`the agent socket ${path} is not open to this user`, 'run `flowtop rules` as root (sudo), or pass --rules PATH to edit a rules file while no agent runs');
      }
      throw new UserError(`cannot connect to the agent socket ${path}: ${(error as Error).message}`);
    }
    const pending: ExtensionMessage[] = [];
    let client: RemoteRules | undefined;
    let helloWait: Waiter | undefined;
    const splitter = new LineSplitter();
    // One error listener from the start: a reset before or after the hello must not go unhandled.
    socket.on('error', (error) => {
      const failure = new UserError(`connection to the extension at ${path} failed: ${error.message}`);
      helloWait?.reject(failure);
      client?.fail(failure);
    });
    const deliver = (msg: ExtensionMessage): void => {
      if (client) client.deliver(msg);
      else if (helloWait && helloWait.accept(msg)) helloWait.resolve(msg);
      // An extension refuses a peer it will not serve with an error in place of its hello.
      else if (helloWait && msg.type === 'error') {
        helloWait.reject(new UserError(`the agent at ${path} refused this client: ${msg.message}`, msg.code === 'not-authorised' ? 'run `flowtop rules` as root (sudo), or as a member of the flowtop group' : undefined));
      }
      else pending.push(msg);
    };
    socket.on('data', (chunk: Buffer) => {
      for (const event of splitter.push(chunk)) {
        if (event.kind !== 'line') {
          const problem = frameError(event);
          client?.fail(new UserError(`the agent sent an unreadable line: ${problem?.message ?? event.kind}`));
          continue;
        }
        const decoded = decodeExtensionMessage(event.line);
        if (decoded.ok) deliver(decoded.message);
      }
    });
    const hello = await new Promise<ExtensionMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new UserError(`the extension at ${path} sent no hello within ${timeoutMs} ms`)), timeoutMs);
      helloWait = {
        accept: (m) => m.type === 'hello',
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      socket.once('close', () => helloWait?.reject(new UserError(`the extension at ${path} closed the connection before its hello`)));
    }).finally(() => (helloWait = undefined)).catch((error: unknown) => {
      socket.destroy();
      throw error;
    });
    if (hello.type !== 'hello') throw new Error('unreachable');
    if (hello.protocol !== PROTOCOL_VERSION) {
      socket.destroy();
      throw new UserError(`the extension at ${path} speaks protocol ${hello.protocol}; this flowtop speaks ${PROTOCOL_VERSION}`, 'use matching versions of flowtop and the agent');
    }
    if (!hello.capabilities.includes('rules')) {
      socket.destroy();
      return { kind: 'no-rules', hello };
    }
    client = new RemoteRules(socket, path, hello, timeoutMs);
    socket.on('close', () => client?.fail(new UserError(`the agent at ${path} closed the connection`)));
    for (const msg of pending) client.deliver(msg);
    client.subscribe(options);
    return { kind: 'connected', client };
  }

  private subscribeRef: string | undefined;

  /** Sends subscribe. The snapshot that follows needs no answer; an error carrying the subscribe's ref
   *  means refusal, and fails every request waiting (they come after it on the same connection). */
  private subscribe(options: RemoteRulesOptions): void {
    this.subscribeRef = this.nextRef();
    this.send({ type: 'subscribe', protocol: PROTOCOL_VERSION, client: { name: options.clientName ?? 'flowtop rules', version: options.clientVersion ?? '1' }, ref: this.subscribeRef });
  }

  /** The agent's rules (all `rules` messages answering one rules-list). */
  async list(): Promise<Rule[]> {
    const ref = this.nextRef();
    const rules: Rule[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        accept: (m) => (m.type === 'rules' || m.type === 'error') && m.ref === ref,
        resolve: (m) => {
          if (m.type === 'error') return reject(refusal(m.message, m.code));
          if (m.type !== 'rules') return;
          rules.push(...m.rules);
          if (m.continues) this.waiters.add(waiter); // more parts follow
          else resolve();
        },
        reject,
      };
      this.waiters.add(waiter);
    });
    this.send({ type: 'rules-list', ref });
    await this.withTimeout(done, 'rule list');
    return rules;
  }

  async add(spec: RuleSpec): Promise<Rule> {
    const ref = this.nextRef();
    const reply = this.waitFor((m) => (m.type === 'rule-changed' || m.type === 'error') && m.ref === ref);
    this.send({ type: 'rule-add', rule: spec, ref });
    const m = await reply;
    if (m.type === 'error') throw refusal(m.message, m.code);
    if (m.type !== 'rule-changed') throw new Error('unreachable');
    return m.rule;
  }

  async remove(id: string): Promise<Rule> {
    const ref = this.nextRef();
    const reply = this.waitFor((m) => (m.type === 'rule-changed' || m.type === 'error') && m.ref === ref);
    this.send({ type: 'rule-remove', id, ref });
    const m = await reply;
    if (m.type === 'error') {
      if (m.code === 'unknown-rule') throw new UserError(`no rule with id ${id}`, 'see the ids with `flowtop rules list`');
      throw refusal(m.message, m.code);
    }
    if (m.type !== 'rule-changed') throw new Error('unreachable');
    return m.rule;
  }

  close(): void {
    this.fail(new UserError('closed'));
    this.socket.destroy();
  }

  private nextRef(): string {
    return `rules-${process.pid}-${++this.serial}`;
  }

  private send(msg: ClientMessage): void {
    if (this.closedError) throw this.closedError;
    this.socket.write(encodeMessage(msg));
  }

  private deliver(msg: ExtensionMessage): void {
    if (msg.type === 'error' && msg.ref !== undefined && msg.ref === this.subscribeRef) {
      this.fail(new UserError(`the agent at ${this.path} refused this client: ${msg.message}`, msg.code === 'not-authorised' ? 'run `flowtop rules` as root (sudo)' : undefined));
      return;
    }
    for (const waiter of [...this.waiters]) {
      if (!waiter.accept(msg)) continue;
      this.waiters.delete(waiter);
      waiter.resolve(msg);
      return;
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters.clear();
  }

  private waitFor(accept: (m: ExtensionMessage) => boolean, timeoutMs = this.timeoutMs): Promise<ExtensionMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    return this.withTimeout(new Promise<ExtensionMessage>((resolve, reject) => this.waiters.add({ accept, resolve, reject })), 'answer', timeoutMs);
  }

  private withTimeout<T>(promise: Promise<T>, what: string, timeoutMs = this.timeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UserError(`the agent at ${this.path} sent no ${what} within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}

function refusal(message: string, code: string): UserError {
  return new UserError(`the agent refused: ${message}`, code === 'not-authorised' ? 'run `flowtop rules` as root (sudo)' : undefined);
}

function openSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
