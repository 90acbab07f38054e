// A small extension for the TUI's socket tests, built on the production ExtensionServer: it serves
// flows, answers verdicts the way an extension must (a `verdict` message back, a rule for
// remember=always), and records every client message it received.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExtensionServer } from '../../../src/protocol/server.js';
import type { Capability, ClientMessage, ExtensionMessage, FlowRecord, HelloMessage, Rule } from '../../../src/protocol/messages.js';

export interface TestExtension {
  path: string;
  received: ClientMessage[];
  flows: Map<string, FlowRecord>;
  rules: Rule[];
  broadcast(msg: ExtensionMessage): void;
  addFlow(flow: FlowRecord): void;
  close(): Promise<void>;
  /** Listen again on the same path (after close), with the same state. */
  restart(): Promise<void>;
  waitFor(ok: (received: ClientMessage[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves once a client's subscribe has reached the extension: the TUI says connected when the
   *  hello arrives, a moment before that, and a broadcast goes only to subscribers. */
  waitSubscribed(timeoutMs?: number): Promise<void>;
}

export function testHello(capabilities: Capability[] = ['verdicts', 'end-flows', 'rules', 'bytes'], mode?: HelloMessage['mode']): HelloMessage {
  return { type: 'hello', protocol: 1, extension: { name: 'test-ext', version: '1.0' }, platform: 'demo', host: 'testhost', capabilities, tokenKind: 'replay', ...(mode ? { mode } : {}) };
}

export async function startTestExtension(options: { hello?: HelloMessage; path?: string; initial?: () => Iterable<ExtensionMessage> } = {}): Promise<TestExtension> {
  const path = options.path ?? join(mkdtempSync(join(tmpdir(), 'flowtop-tui-')), 'ext.sock');
  const received: ClientMessage[] = [];
  const flows = new Map<string, FlowRecord>();
  const rules: Rule[] = [];
  let ruleSeq = 0;
  let server: ExtensionServer;
  const makeServer = () =>
    new ExtensionServer({
      path,
      hello: options.hello ?? testHello(),
      onSubscribe: function* () {
        yield { type: 'rules', rules: [...rules] };
        for (const flow of flows.values()) yield { type: 'flow', flow };
        if (options.initial) yield* options.initial();
      },
      onMessage: (client, msg) => {
        received.push(msg);
        if (msg.type === 'verdict') {
          const flow = flows.get(msg.id);
          if (!flow) return void client.reply('unknown-flow', `no flow ${msg.id}`, msg.ref);
          const { pending: _p, ...rest } = flow;
          let ruleId: string | undefined;
          if (msg.remember === 'always') {
            const rule: Rule = {
              id: `r${++ruleSeq}`,
              action: msg.action,
              identity: { kind: 'sha256', value: 'ab'.repeat(32), label: 'curl' },
              ...(msg.scope === 'endpoint' ? { endpoint: { address: flow.remote.address, port: flow.remote.port } } : {}),
              duration: { kind: 'always' },
              created: Date.now(),
              hits: 1,
              enabled: true,
            };
            rules.push(rule);
            ruleId = rule.id;
            server.broadcast({ type: 'rule-changed', op: 'added', rule });
          }
          const verdict = { action: msg.action, by: ruleId ? ('rule' as const) : ('user' as const), ...(ruleId ? { ruleId } : {}) };
          flows.set(msg.id, { ...rest, verdict });
          server.broadcast({ type: 'verdict', id: msg.id, time: Date.now(), verdict });
        }
        if (msg.type === 'rule-add') {
          const rule: Rule = { ...msg.rule, id: `r${++ruleSeq}`, created: Date.now(), hits: 0, enabled: msg.rule.enabled ?? true };
          rules.push(rule);
          server.broadcast({ type: 'rule-changed', op: 'added', rule });
        }
        if (msg.type === 'rule-remove') {
          const at = rules.findIndex((r) => r.id === msg.id);
          if (at < 0) return void client.reply('unknown-rule', `no rule ${msg.id}`, msg.ref);
          const [rule] = rules.splice(at, 1);
          server.broadcast({ type: 'rule-changed', op: 'removed', rule: rule! });
        }
      },
    });
  server = makeServer();
  await server.listen();
  const ext: TestExtension = {
    path,
    received,
    flows,
    rules,
    broadcast: (msg) => void server.broadcast(msg),
    addFlow(flow) {
      flows.set(flow.id, flow);
      server.broadcast({ type: 'flow', flow });
    },
    close: () => server.close(),
    async restart() {
      server = makeServer();
      await server.listen();
    },
    async waitSubscribed(timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      while (!server.clients.some((c) => c.subscribed)) {
        if (Date.now() > deadline) throw new Error('no client subscribed to the test extension');
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async waitFor(ok, timeoutMs = 3_000) {
      const deadline = Date.now() + timeoutMs;
      while (!ok(received)) {
        if (Date.now() > deadline) throw new Error(`the test extension did not receive the expected message; got ${JSON.stringify(received)}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
  return ext;
}
