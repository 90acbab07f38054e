// The fallback when netlink sock_diag cannot be used: /proc/net/{tcp,tcp6,udp,udp6}. Same sockets,
// no byte counters and no cookies, and slower (text, every socket formatted by the kernel). Each line
// is outside input: one that does not parse is skipped and counted.
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import type { AddressFamily } from '../../protocol/messages.js';
import { formatAddress } from '../../net/address.js';
import type { InetProtocol, InetSocket } from './sock-diag-dump.js';
import { expectErrno } from '../../errno.js';

const littleEndian = endianness() === 'LE';

/** The kernel prints each 32-bit word of the address as a host-order number in hex. */
function parseHexAddress(hex: string): string | undefined {
  if ((hex.length !== 8 && hex.length !== 32) || !/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  const out = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    if (littleEndian) out.writeUInt32LE(word, w * 4);
    else out.writeUInt32BE(word, w * 4);
  }
  return formatAddress(out);
}

function parseHexEndpoint(text: string | undefined): { address: string; port: number } | undefined {
  if (text === undefined) return undefined;
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  const address = parseHexAddress(text.slice(0, colon));
  const portText = text.slice(colon + 1);
  if (address === undefined || !/^[0-9A-Fa-f]{4}$/.test(portText)) return undefined;
  return { address, port: parseInt(portText, 16) };
}

const decimal = /^\d+$/;

/** Parses one data line of /proc/net/{tcp,udp}[6]. */
export function parseProcNetLine(line: string, protocol: InetProtocol, family: AddressFamily): InetSocket | undefined {
  const f = line.trim().split(/\s+/);
  if (f.length < 10 || !/^\d+:$/.test(f[0]!)) return undefined;
  const local = parseHexEndpoint(f[1]);
  const remote = parseHexEndpoint(f[2]);
  const stateText = f[3]!;
  const uidText = f[7]!;
  const inodeText = f[9]!;
  if (!local || !remote || !/^[0-9A-Fa-f]{2}$/.test(stateText) || !decimal.test(uidText) || !decimal.test(inodeText)) return undefined;
  const wantLength = family === 'ipv4' ? 8 : 32;
  if (f[1]!.indexOf(':') !== wantLength) return undefined;
  const uid = Number(uidText);
  const inode = Number(inodeText);
  if (uid > 0xffffffff || inode > 0xffffffff) return undefined;
  return { protocol, family, state: parseInt(stateText, 16), local, remote, uid, inode };
}

export interface ProcNetResult {
  sockets: InetSocket[];
  /** Lines that did not parse. */
  malformed: number;
}

/** Parses a whole /proc/net/{tcp,udp}[6] file (the first line is the column header). */
export function parseProcNet(text: string, protocol: InetProtocol, family: AddressFamily): ProcNetResult {
  const sockets: InetSocket[] = [];
  let malformed = 0;
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const s = parseProcNetLine(line, protocol, family);
    if (s) sockets.push(s);
    else malformed++;
  }
  return { sockets, malformed };
}

/** Reads every TCP and UDP socket from /proc/net (of this process's network namespace). A missing
 *  file (IPv6 disabled) counts as no sockets. */
export function readProcNet(root = '/proc/net'): ProcNetResult {
  const out: ProcNetResult = { sockets: [], malformed: 0 };
  const files: Array<[string, InetProtocol, AddressFamily]> = [
    ['tcp', 'tcp', 'ipv4'], ['tcp6', 'tcp', 'ipv6'], ['udp', 'udp', 'ipv4'], ['udp6', 'udp', 'ipv6'],
  ];
  for (const [name, protocol, family] of files) {
    let text: string;
    try {
      text = readFileSync(`${root}/${name}`, 'latin1');
    } catch (error) {
      expectErrno(error, ['ENOENT']); // IPv6 disabled: no such file, no such sockets
      continue;
    }
    const r = parseProcNet(text, protocol, family);
    for (const s of r.sockets) out.sockets.push(s);
    out.malformed += r.malformed;
  }
  return out;
}
