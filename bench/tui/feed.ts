// The benchmark's extension, in its own process so its CPU is not counted as flowtop's:
// serves INITIAL flows on subscribe, then 10,000 messages/s for the given seconds.
import { ExtensionServer } from '../../src/protocol/server.js';
import type { ExtensionMessage } from '../../src/protocol/messages.js';
import { HELLO, flowRecord, slice } from './load.js';

const [path, initialArg, secondsArg] = process.argv.slice(2);
const initial = Number(initialArg ?? 100_000);
const seconds = Number(secondsArg ?? 10);
const live: number[] = [];
let next = 0;

const server = new ExtensionServer({
  path: path!,
  hello: HELLO,
  onSubscribe: function* (): Iterable<ExtensionMessage> {
    const now = Date.now();
    for (; next < initial; next++) {
      live.push(next);
      yield { type: 'flow', flow: flowRecord(next, now - (initial - next)) };
    }
    process.send?.({ type: 'snapshot-sent' });
  },
});

process.on('message', (msg: { type: string }) => {
  if (msg.type !== 'start') return;
  const started = Date.now();
  let slices = 0;
  const timer = setInterval(() => {
    // Catch up on slices a late timer missed, so the rate holds at 10,000 messages/s.
    const due = Math.floor((Date.now() - started) / 10);
    while (slices < due) {
      const s = slice(next, live, Date.now());
      next = s.next;
      for (const m of s.messages) server.broadcast(m);
      slices++;
    }
    if (Date.now() - started >= seconds * 1000) {
      clearInterval(timer);
      process.send?.({ type: 'done', messages: slices * 100 });
    }
  }, 10);
});

await server.listen();
process.send?.({ type: 'listening' });
