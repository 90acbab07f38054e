// What the recorder hands the writer: plain data that crosses a worker boundary (structured clone).

/** The program behind a flow, as far as it could be told. */
export interface ProcessFacts {
  /** The identity row's key: a code identity ("sha256:…", "package:NAME:PATH"), else "path:…" or
   *  "name:…" for an owner seen but not identified; absent when no owner was found. */
  key?: string;
  name?: string;
  path?: string;
  sha256?: string;
  package?: string;
  /** Index into TRUST_CODES. */
  trust: number;
  /** The parent's executable path, or its name. */
  parent?: string;
}

/** A flow's row, first written whole; later changes come as FlowChange. */
export interface FlowRow {
  /** The recorder's number for the flow (FlowChange refers to it). */
  ref: number;
  start: number;
  end?: number;
  facts: ProcessFacts;
  uid?: number;
  kind: number;
  raddr: string;
  rport: number;
  host?: string;
  verdict: number;
  rule?: string;
  rx?: number;
  tx?: number;
}

export interface FlowChange {
  ref: number;
  /** The flow's program, when its lookup answered after the row was written. */
  facts?: ProcessFacts;
  end?: number;
  host?: string;
  verdict?: number;
  rule?: string;
  rx?: number;
  tx?: number;
}

/** Traffic added to one process identity's minute (flows: flows that started in it). */
export interface ProcessBucket {
  minute: number;
  key?: string;
  facts?: ProcessFacts;
  uid: number;
  rx: number;
  tx: number;
  flows: number;
}

/** Traffic added to one remote's minute: its host name, else its address. */
export interface HostBucket {
  minute: number;
  host: string;
  rx: number;
  tx: number;
  flows: number;
}

/** New flows as columns (the recorder's form: numbers cost a fraction of objects to pass between
 *  threads and to collect): ROW_FIELDS numbers per flow in `numbers`, in the order of ROW; NaN for an
 *  absent number. Texts (address, host, rule) and the program are numbers the recorder gives once and
 *  keeps: a batch carries only the ones it uses for the first time (`texts`, numbered from
 *  `firstText` on; `facts`), and the writer keeps them. A text number is -1 when absent. */
export interface RowColumns {
  numbers: Float64Array;
  firstText: number;
  texts: string[];
  facts: Array<{ id: number; facts: ProcessFacts }>;
}

/** Texts (addresses, host names, rule ids) numbered by the recorder, each sent once: past this many
 *  the recorder forgets them and numbers them again as they come. Numbers are never reused, so every
 *  number a batch uses is among the newest MAX_TEXT_IDS; the writer keeps twice as many. */
export const MAX_TEXT_IDS = 50_000;

export const ROW = { ref: 0, start: 1, end: 2, facts: 3, uid: 4, kind: 5, raddr: 6, rport: 7, host: 8, verdict: 9, rule: 10, rx: 11, tx: 12 } as const;
export const ROW_FIELDS = 13;

export interface HistoryBatch {
  /** New flows as objects (tools and tests); the recorder sends `columns`. */
  rows: FlowRow[];
  columns?: RowColumns;
  changes: FlowChange[];
  /** Flows that ended and changed nothing else, four numbers each: ref, end, rx, tx (columns cost a
   *  fraction of objects to pass between threads). */
  ended?: Float64Array;
  processes: ProcessBucket[];
  hosts: HostBucket[];
}

export type HistoryEventKind = 'first-seen' | 'changed' | 'rule-blocking';

/** Something worth telling a person, stored and passed on as it happens. */
export interface HistoryEvent {
  time: number;
  kind: HistoryEventKind;
  /** The program's identity key and what to call it. */
  identity?: string;
  name?: string;
  path?: string;
  rule?: string;
  detail: string;
}

export const ACTION = { observed: 0, allow: 1, block: 2 } as const;
export const BY = { none: 0, rule: 1, user: 2, default: 3 } as const;
export const KIND_INBOUND = 4;
export const KIND_IPV6 = 8;
