// The recorder programs read from their context only what their hook's context holds: the sendmsg
// hooks the datagram's destination (user_ip4 for UDP4_SENDMSG, user_ip6 for UDP6_SENDMSG); the
// connect and sock_create hooks no address at all (they take no family).
import { describe, expect, test } from 'vitest';
import { recorderProgram } from '../../src/native/linux/bpf-program.js';

const BPF_LDX_MEM_W = 0x61;
const CTX = 6; // the programs keep the context pointer in r6

/** Offsets of the 32-bit context fields a program loads (ldx w from r6). */
function contextWordsRead(program: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 8 <= program.length; at += 8) {
    if (program[at] === BPF_LDX_MEM_W && program[at + 1]! >> 4 === CTX) out.push(program.readInt16LE(at + 2));
  }
  return out;
}

describe('recorder programs and their hooks', () => {
  // struct bpf_sock_addr: user_ip4 at 4, user_ip6[4] at 8..20, user_port at 24
  test('sendmsg4 reads user_ip4 and the port; sendmsg6 reads user_ip6 and the port', () => {
    expect(contextWordsRead(recorderProgram(3, undefined, { map: 4, family: 4 })).sort((a, b) => a - b)).toEqual([4, 24]);
    expect(contextWordsRead(recorderProgram(3, undefined, { map: 4, family: 6 })).sort((a, b) => a - b)).toEqual([8, 12, 16, 20, 24]);
  });

  test('the connect and sock_create programs read no address from their context', () => {
    expect(contextWordsRead(recorderProgram(3))).toEqual([]);
  });
});
