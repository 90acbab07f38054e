// `flowtop agent --nats`: the fleet's rules (enforced from the local copy until NATS answers), the link
// thread that publishes and receives, the responder for requests, and the agent's own token so its
// connections to NATS are not held by its own firewall.
import type { Agent } from '../agent/agent.js';
import { makeLinuxToken } from '../native/linux/token.js';
import type { RuleStore } from '../rules/store.js';
import type { NatsLinkConfig } from './connect-options.js';
import { FleetLink } from './agent-link.js';
import { FleetRules, fleetCopyPath } from './fleet-rules.js';
import type { FleetLinkStatus } from './link-types.js';
import { FleetResponder } from './responder.js';
import { ANNOUNCE_INTERVAL_MS } from './wire.js';

export interface AgentFleetOptions {
  config: NatsLinkConfig;
  host: string;
  maxAgeMs: number;
  rulesPath: string;
  store: RuleStore;
  log(line: string): void;
}

export class AgentFleet {
  private agent?: Agent;
  private announcer?: NodeJS.Timeout;

  private constructor(readonly link: FleetLink, readonly rules: FleetRules, readonly selfToken: string | undefined, private readonly options: AgentFleetOptions) {}

  static async start(options: AgentFleetOptions): Promise<AgentFleet> {
    let fleet: AgentFleet | undefined;
    const rules = new FleetRules({
      host: options.host,
      copyPath: fleetCopyPath(options.rulesPath),
      apply: (list) => options.store.setFleetRules(list),
      changed: (changes) => {
        for (const c of changes) options.log(`fleet rule ${c.op}: ${c.rule.id} (${c.rule.action})`);
        fleet?.agent?.rulesChangedElsewhere(changes);
      },
      log: options.log,
    });
    await rules.loadCopy();
    const token = makeLinuxToken(process.pid);
    if (!token) options.log('NATS: the agent could not read its own process token: its own connections to NATS are held and judged like any other');
    const link = new FleetLink({
      config: options.config,
      host: options.host,
      started: Date.now(),
      maxAgeMs: options.maxAgeMs,
      log: options.log,
      onRules: (entries) => rules.replaceAll(entries),
      onRule: (key, value) => rules.change(key, value),
    });
    fleet = new AgentFleet(link, rules, token?.toString('base64'), options);
    return fleet;
  }

  /** The link's state for the status file. */
  readonly status = (): FleetLinkStatus & { host: string; servers: string[] } => ({
    ...this.link.status, fleetRules: this.rules.size, host: this.options.host, servers: this.options.config.servers,
  });

  /** Requests are answered by this agent's handlers; its hello is announced every few seconds. */
  bind(agent: Agent): void {
    this.agent = agent;
    this.link.attach(new FleetResponder({
      handle: (client, msg) => agent.request(client, msg),
      snapshot: () => agent.snapshotMessages(),
      lastBatch: () => this.link.lastBatch(),
      now: () => Date.now(),
    }));
    const announce = (): void => {
      try {
        this.link.announce(agent.hello());
      } catch (error) {
        this.options.log(`NATS: announcing: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    announce();
    this.announcer = setInterval(announce, ANNOUNCE_INTERVAL_MS);
    this.announcer.unref();
  }

  async stop(): Promise<void> {
    if (this.announcer) clearInterval(this.announcer);
    await this.link.stop();
    await this.rules.flushed();
  }
}
