// For walking the client by hand: three simulated hosts publishing a few flows a second, each with a
// flow waiting for a verdict every 20 s, until interrupted. Usage: node dist-bench/bench/fleet/walk.js nats://127.0.0.1:PORT
import { SimAgent, prepareFleet } from './sim-agent.js';

const url = process.argv[2] ?? 'nats://127.0.0.1:4222';
await prepareFleet(url);
const agents = await Promise.all(['web-1', 'web-2', 'db-1'].map((host) => SimAgent.start({ url, host })));
const pending = async () => {
  for (const a of agents) {
    const flow = a.newFlow({ pending: { deadline: Date.now() + 60_000 }, remote: { address: '203.0.113.66', port: 8443 } });
    a.live.set(flow.id, flow);
    await a.publish([{ type: 'flow', flow }]);
  }
};
await pending();
const timers = [setInterval(() => void Promise.all(agents.map((a) => a.tick(3))), 1_000), setInterval(() => void pending(), 20_000)];
const stop = async () => {
  timers.forEach(clearInterval);
  for (const a of agents) {
    process.stdout.write(`${a.options.host}: ${a.verdictRequests} verdict requests, answered: ${[...a.applied.keys()].join(' ') || 'none'}\n`);
    await a.stop();
  }
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
process.stdout.write(`publishing for ${agents.map((a) => a.options.host).join(', ')} to ${url}\n`);
