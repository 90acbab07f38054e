// Before flowtop chooses the default socket on its own (no --socket, no FLOWTOP_SOCKET), it asks
// whether that socket will really serve this user: a socket file left by an agent that is gone, or an
// agent that refuses this user, would otherwise leave a person staring at "reconnecting" or an error
// where the passive monitor could show this machine's connections.
import { connect } from 'node:net';
import { decodeExtensionMessage } from '../protocol/codec.js';
import type { HelloMessage } from '../protocol/messages.js';
import { describeSocketError } from './session.js';

export type ProbeResult =
  /** `hello`: what the extension said first (absent when it said nothing in time). */
  | { usable: true; hello?: HelloMessage }
  /** `denied`: the agent runs but refuses this user (joining its group is the fix). */
  | { usable: false; why: string; denied: boolean };

/** Reads the extension's first line: a hello means usable; `not-authorised`, a refused or missing
 *  socket mean not. A socket that says nothing within `timeoutMs` is left to the normal source, which
 *  retries and says what happens (a busy agent may be slow to greet). */
export function probeSocket(path: string, timeoutMs = 1500): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = connect(path);
    let buffered = '';
    let settled = false;
    const done = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ usable: true }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end < 0) {
        if (buffered.length > 1 << 20) done({ usable: false, why: `${path} sent no protocol line in its first MiB`, denied: false });
        return;
      }
      const decoded = decodeExtensionMessage(buffered.slice(0, end));
      if (!decoded.ok) return done({ usable: false, why: `${path} does not speak the flowtop protocol (${decoded.error.message})`, denied: false });
      const first = decoded.message;
      if (first.type === 'hello') return done({ usable: true, hello: first });
      if (first.type === 'error' && first.code === 'not-authorised') return done({ usable: false, why: `the agent at ${path} refused this user`, denied: true });
      done({ usable: false, why: `the extension at ${path} refused the connection: ${first.type === 'error' ? first.message : `it began with "${first.type}"`}`, denied: false });
    });
    socket.on('end', () => done({ usable: false, why: `the extension at ${path} closed the connection before its hello`, denied: false }));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const why = describeSocketError(path, error);
      const gone = error.code === 'ECONNREFUSED' ? ' (an agent that is no longer running left it)' : '';
      done({ usable: false, why: `${why}${gone}`, denied: error.code === 'EACCES' || error.code === 'EPERM' });
    });
  });
}
