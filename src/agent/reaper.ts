// Whether the process that opened a pending flow has died: then nobody waits for the answer, and the
// flow gets the default at once instead of holding its packets until the deadline.
import { decodeLinuxToken } from '../protocol/tokens.js';
import { readProcStat } from '../native/linux/procfs.js';
import type { FlowRecord } from '../protocol/messages.js';

/** Why the flow's process is gone (exited, a zombie, or its PID now names a newer process), or
 *  undefined while it lives or when the flow names no process. */
export function ownerGone(flow: FlowRecord): string | undefined {
  return instanceGone(flow.token, flow.pid);
}

/** Whether the process instance a token names has ended (a rule kept "until it exits" then ends
 *  too). A token that is not a Linux token, or a process that cannot be read, is not evidence. */
export function tokenGone(token: string): boolean {
  return instanceGone(token, undefined) !== undefined;
}

function instanceGone(tokenBase64: string | undefined, hintPid: number | undefined): string | undefined {
  const token = tokenBase64 ? decodeLinuxToken(Buffer.from(tokenBase64, 'base64')) : undefined;
  const pid = token?.pid ?? hintPid;
  if (pid === undefined) return undefined;
  let stat;
  try {
    stat = readProcStat(pid);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ESRCH' ? `process ${pid} exited while its flow waited` : undefined;
  }
  if (!stat) return undefined; // unreadable: not evidence that it died
  if (stat.state === 'Z' || stat.state === 'X') return `process ${pid} exited while its flow waited`;
  if (token && stat.startTime !== token.startTime) return `process ${pid} exited while its flow waited (its PID names a newer process)`;
  return undefined;
}
