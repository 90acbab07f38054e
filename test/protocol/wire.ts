// A raw test client for a protocol socket: writes arbitrary bytes, reads replies line by line,
// waits for conditions with a timeout (never a sleep).
import { createConnection, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RawClient {
  socket: Socket;
  /** Next parsed JSON line from the peer; rejects after the timeout or if the peer closes first. */
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  write(data: string | Buffer): void;
  /** Resolves when the peer has closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  end(): void;
}

export async function connectRaw(path: string): Promise<RawClient> {
  const socket = createConnection({ path, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  let buffer = '';
  let closed = false;
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  socket.setEncoding('utf8');
  socket.on('data', (text: string) => {
    buffer += text;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
    wake();
  });
  socket.on('error', () => undefined);
  const closedPromise = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closed = true;
      wake();
      resolve();
    });
    socket.on('end', () => {
      closed = true;
      wake();
      resolve();
    });
  });
  return {
    socket,
    closed: closedPromise,
    isClosed: () => closed,
    write: (data) => {
      socket.write(data);
    },
    end: () => socket.end(),
    next: (timeoutMs = 5000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms`)), timeoutMs);
        const check = (): void => {
          const line = lines.shift();
          if (line !== undefined) {
            clearTimeout(timer);
            resolve(JSON.parse(line) as Record<string, unknown>);
          } else if (closed) {
            clearTimeout(timer);
            reject(new Error('connection closed before a line arrived'));
          } else waiters.push(check);
        };
        check();
      }),
  };
}

/** A fresh directory for sockets, removed by the returned cleanup. */
export function socketDir(): { path: (name: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'flowtop-test-'));
  return { path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves when `predicate` holds, polling on the event loop; rejects after the timeout. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
