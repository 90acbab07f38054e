// Where socket facts come from: netlink sock_diag when it works, /proc/net otherwise (no counters,
// no exact lookups). Chosen once, when opened.
import { SockDiagDumper, type ExactTuple, type InetSocket } from '../native/linux/sock-diag-dump.js';
import { readProcNet } from '../native/linux/proc-net.js';

export interface SocketReader {
  readonly kind: 'sock_diag' | 'proc';
  /** Whether TCP byte counters come with the sockets. */
  readonly counters: boolean;
  /** Whether `lookup` works (one socket at a time); when false, callers use `dumpAll`. */
  readonly exactLookups: boolean;
  /** Every owned TCP socket (LISTEN included, TIME_WAIT excluded) and every UDP socket. */
  dumpAll(): InetSocket[];
  lookup(tuple: ExactTuple): InetSocket | undefined;
  close(): void;
  /** Why sock_diag is not used, when it is not. */
  readonly fallbackReason?: string;
}

const TIME_WAIT = 6;

export function openSocketReader(options: { forceProc?: boolean } = {}): SocketReader {
  let fallbackReason = 'forced by option';
  if (!options.forceProc) {
    try {
      const diag = new SockDiagDumper();
      diag.dumpAll(); // fails here, not later, when the kernel refuses dumps
      return {
        kind: 'sock_diag',
        counters: true,
        exactLookups: true,
        dumpAll: () => diag.dumpAll(),
        lookup: (tuple) => diag.lookup(tuple),
        close: () => diag.close(),
      };
    } catch (error) {
      fallbackReason = error instanceof Error ? error.message : String(error);
    }
  }
  return {
    kind: 'proc',
    counters: false,
    exactLookups: false,
    fallbackReason,
    dumpAll: () => readProcNet().sockets.filter((s) => !(s.protocol === 'tcp' && (s.state === TIME_WAIT || s.inode === 0))),
    lookup: () => undefined,
    close: () => undefined,
  };
}
