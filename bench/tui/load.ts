// Synthetic load shared by the benchmark's two processes: deterministic flows over a few hundred
// process tokens, and the attributions a replay backend answers for them.
import type { Attribution } from '../../src/attribution/types.js';
import type { ExtensionMessage, FlowRecord, HelloMessage } from '../../src/protocol/messages.js';

export const TOKENS = 500;
const NAMES = ['firefox', 'curl', 'sshd', 'node', 'git', 'apt', 'systemd-resolved', 'chrome', 'python3', 'dockerd'];

const tokens = new Map<number, string>();

/** The token of process `i`, made once: the frame part generates its load in the measured process,
 *  and a Buffer per flow here was 12% of everything that process allocated (the app itself gets its
 *  tokens as strings in the decoded lines, interned by the reducer). */
export function tokenOf(i: number): string {
  let token = tokens.get(i);
  if (token === undefined) {
    const b = Buffer.alloc(24);
    b.writeUInt32LE(1000 + i, 0);
    b.writeUInt32LE(i * 31 + 7, 8);
    token = b.toString('base64');
    tokens.set(i, token);
  }
  return token;
}

export function attributions(): Map<string, Attribution> {
  const map = new Map<string, Attribution>();
  for (let i = 0; i < TOKENS; i++) {
    const name = NAMES[i % NAMES.length]!;
    const secure = i % 5 !== 0;
    map.set(
      tokenOf(i),
      secure
        ? { trust: 'secure', pid: 1000 + i, uid: 1000, user: 'alice', name, path: `/usr/bin/${name}`, identity: `package:${name}:/usr/bin/${name}` }
        : { trust: 'insecure', pid: 1000 + i, uid: 0, user: 'root', name, path: `/usr/sbin/${name}`, reason: { call: 'pidfd_open', errno: 'EPERM', message: 'name comes from the PID only and can be spoofed by PID reuse' } },
    );
  }
  return map;
}

export const HELLO: HelloMessage = {
  type: 'hello',
  protocol: 1,
  extension: { name: 'bench-feed', version: '1' },
  platform: 'demo',
  host: 'bench',
  capabilities: ['verdicts', 'bytes', 'end-flows', 'rules'],
  tokenKind: 'replay',
};

export function flowRecord(n: number, time: number): FlowRecord {
  return {
    id: `b${n}`,
    time,
    direction: n % 9 === 0 ? 'inbound' : 'outbound',
    protocol: n % 4 === 0 ? 'udp' : 'tcp',
    family: 'ipv4',
    local: { address: '10.0.0.2', port: 1024 + (n % 60000) },
    remote: { address: `${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}.${(n * 7) & 255}`, port: n % 3 === 0 ? 53 : 443 },
    token: tokenOf(n % TOKENS),
    ...(n % 50 === 0 ? { pending: { deadline: time + 30_000 } } : {}),
  };
}

/** One 10 ms slice of the live load: 100 messages (new flows, ends, byte counters). */
export function slice(next: number, live: number[], time: number): { messages: ExtensionMessage[]; next: number } {
  const messages: ExtensionMessage[] = [];
  for (let i = 0; i < 50; i++) {
    const n = next++;
    live.push(n);
    messages.push({ type: 'flow', flow: flowRecord(n, time) });
  }
  for (let i = 0; i < 25 && live.length > 0; i++) {
    const at = (next * 7919 + i * 104729) % live.length;
    const n = live[at]!;
    live[at] = live[live.length - 1]!;
    live.pop();
    messages.push({ type: 'end', id: `b${n}`, time });
  }
  for (let i = 0; i < 25 && live.length > 0; i++) {
    const counters = [0, 1, 2, 3].map((k) => {
      const n = live[(next * 31 + i * 17 + k * 1009) % live.length]!;
      return { id: `b${n}`, rx: (time % 1_000_000) * 3 + n, tx: (time % 1_000_000) + n };
    });
    messages.push({ type: 'bytes', time, counters });
  }
  return { messages, next };
}
