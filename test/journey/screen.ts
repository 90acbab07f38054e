// A small terminal emulator for tests: enough of ECMA-48 / xterm to keep the screen a full-screen
// program draws (cursor moves, erase, insert/delete lines, scroll regions, SGR attributes, the
// alternate screen) and to count what a person would notice that is not on the screen (bells, the
// switch to and from the alternate screen, the cursor shown again).

export interface Cell {
  ch: string;
  bold: boolean;
  inverse: boolean;
  /** SGR foreground colour parameter (e.g. "31"), or '' for the default. */
  fg: string;
  bg: string;
}

interface Attrs {
  bold: boolean;
  inverse: boolean;
  fg: string;
  bg: string;
}

const PLAIN: Attrs = { bold: false, inverse: false, fg: '', bg: '' };

function blank(attrs: Attrs = PLAIN): Cell {
  return { ch: ' ', bold: false, inverse: false, fg: '', bg: attrs.bg };
}

function isWide(cp: number): boolean {
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) || (cp >= 0x1f900 && cp <= 0x1f9ff);
}

export class VirtualScreen {
  private main: Cell[][];
  private alt: Cell[][];
  private altActive = false;
  private x = 0;
  private y = 0;
  private wrapPending = false;
  private saved = { x: 0, y: 0 };
  private attrs: Attrs = { ...PLAIN };
  private top = 0;
  private bottom: number;
  private state: 'ground' | 'esc' | 'csi' | 'osc' | 'osc-esc' | 'charset' = 'ground';
  private seq = '';
  private readonly decoder = new TextDecoder('utf-8');

  /** Bells rung (BEL outside an OSC string). */
  bells = 0;
  /** Times the alternate screen was entered and left. */
  altEntered = 0;
  altLeft = 0;
  cursorVisible = true;
  /** Every SGR parameter string seen, for checks such as "no colour at all". */
  readonly sgrSeen = new Set<string>();
  /** Every character drawn, for checks such as "nothing but ASCII". */
  readonly drawn = new Set<string>();

  constructor(readonly cols: number, readonly rows: number) {
    this.main = this.grid();
    this.alt = this.grid();
    this.bottom = rows - 1;
  }

  get onAltScreen(): boolean {
    return this.altActive;
  }

  private grid(): Cell[][] {
    return Array.from({ length: this.rows }, () => this.row());
  }

  private row(): Cell[] {
    return Array.from({ length: this.cols }, () => blank(this.attrs));
  }

  private get buf(): Cell[][] {
    return this.altActive ? this.alt : this.main;
  }

  feed(data: Buffer | string): void {
    const text = typeof data === 'string' ? data : this.decoder.decode(data, { stream: true });
    for (const ch of text) this.char(ch);
  }

  private char(ch: string): void {
    switch (this.state) {
      case 'esc':
        return this.escape(ch);
      case 'csi':
        this.seq += ch;
        if (ch >= '@' && ch <= '~') {
          this.state = 'ground';
          this.csi(this.seq);
        }
        return;
      case 'osc':
        if (ch === '\x07') this.state = 'ground';
        else if (ch === '\x1b') this.state = 'osc-esc';
        return;
      case 'osc-esc':
        this.state = ch === '\\' ? 'ground' : 'osc';
        return;
      case 'charset':
        this.state = 'ground';
        return;
    }
    const cp = ch.codePointAt(0) as number;
    if (cp < 0x20 || cp === 0x7f) return this.control(ch);
    this.print(ch, isWide(cp) ? 2 : 1);
  }

  private control(ch: string): void {
    switch (ch) {
      case '\x1b':
        this.state = 'esc';
        return;
      case '\x07':
        this.bells++;
        return;
      case '\r':
        this.x = 0;
        this.wrapPending = false;
        return;
      case '\n':
      case '\v':
      case '\f':
        this.lineFeed();
        return;
      case '\b':
        if (this.x > 0) this.x--;
        this.wrapPending = false;
        return;
      case '\t':
        this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8);
        return;
    }
  }

  private escape(ch: string): void {
    this.state = 'ground';
    switch (ch) {
      case '[':
        this.state = 'csi';
        this.seq = '';
        return;
      case ']':
        this.state = 'osc';
        return;
      case '(': case ')': case '*': case '+':
        this.state = 'charset';
        return;
      case '7':
        this.saved = { x: this.x, y: this.y };
        return;
      case '8':
        this.x = this.saved.x;
        this.y = this.saved.y;
        this.wrapPending = false;
        return;
      case 'D':
        this.lineFeed();
        return;
      case 'E':
        this.x = 0;
        this.lineFeed();
        return;
      case 'M':
        if (this.y === this.top) this.scrollDown(1);
        else if (this.y > 0) this.y--;
        return;
      case 'c':
        this.main = this.grid();
        this.alt = this.grid();
        this.altActive = false;
        this.x = this.y = 0;
        return;
    }
  }

  private print(ch: string, width: number): void {
    if (this.wrapPending || this.x + width > this.cols) {
      this.x = 0;
      this.lineFeed();
    }
    const line = this.buf[this.y] as Cell[];
    line[this.x] = { ch, bold: this.attrs.bold, inverse: this.attrs.inverse, fg: this.attrs.fg, bg: this.attrs.bg };
    if (width === 2 && this.x + 1 < this.cols) line[this.x + 1] = { ...(line[this.x] as Cell), ch: '' };
    this.drawn.add(ch);
    if (this.x + width >= this.cols) {
      this.x = this.cols - 1;
      this.wrapPending = true;
    } else {
      this.x += width;
    }
  }

  private lineFeed(): void {
    this.wrapPending = false;
    if (this.y === this.bottom) this.scrollUp(1);
    else if (this.y < this.rows - 1) this.y++;
  }

  private scrollUp(n: number): void {
    const buf = this.buf;
    for (let i = 0; i < n; i++) {
      buf.splice(this.top, 1);
      buf.splice(this.bottom, 0, this.row());
    }
  }

  private scrollDown(n: number): void {
    const buf = this.buf;
    for (let i = 0; i < n; i++) {
      buf.splice(this.bottom, 1);
      buf.splice(this.top, 0, this.row());
    }
  }

  private csi(seq: string): void {
    const final = seq.slice(-1);
    const body = seq.slice(0, -1);
    const priv = /^[?>=<]/.test(body) ? body[0] : '';
    const params = (priv ? body.slice(1) : body).replace(/[ -/]+$/, '');
    const nums = params === '' ? [] : params.split(';').map((p) => (p === '' ? NaN : Number(p.split(':')[0])));
    const n = (i: number, d: number) => (Number.isFinite(nums[i]) && (nums[i] as number) > 0 ? (nums[i] as number) : d);
    const clampY = (v: number) => Math.max(0, Math.min(this.rows - 1, v));
    const clampX = (v: number) => Math.max(0, Math.min(this.cols - 1, v));
    if (final !== 'm') this.wrapPending = false;
    if (priv === '?') {
      if (final === 'h' || final === 'l') this.mode(nums, final === 'h');
      return;
    }
    if (priv) return;
    switch (final) {
      case 'A': this.y = clampY(this.y - n(0, 1)); return;
      case 'B': case 'e': this.y = clampY(this.y + n(0, 1)); return;
      case 'C': case 'a': this.x = clampX(this.x + n(0, 1)); return;
      case 'D': this.x = clampX(this.x - n(0, 1)); return;
      case 'E': this.y = clampY(this.y + n(0, 1)); this.x = 0; return;
      case 'F': this.y = clampY(this.y - n(0, 1)); this.x = 0; return;
      case 'G': case '`': this.x = clampX(n(0, 1) - 1); return;
      case 'd': this.y = clampY(n(0, 1) - 1); return;
      case 'H': case 'f': this.y = clampY(n(0, 1) - 1); this.x = clampX(n(1, 1) - 1); return;
      case 'J': return this.eraseDisplay(Number.isFinite(nums[0]) ? (nums[0] as number) : 0);
      case 'K': return this.eraseLine(Number.isFinite(nums[0]) ? (nums[0] as number) : 0);
      case 'X': {
        const line = this.buf[this.y] as Cell[];
        for (let i = this.x; i < Math.min(this.cols, this.x + n(0, 1)); i++) line[i] = blank(this.attrs);
        return;
      }
      case 'P': {
        const line = this.buf[this.y] as Cell[];
        line.splice(this.x, n(0, 1));
        while (line.length < this.cols) line.push(blank(this.attrs));
        return;
      }
      case '@': {
        const line = this.buf[this.y] as Cell[];
        for (let i = 0; i < n(0, 1); i++) line.splice(this.x, 0, blank(this.attrs));
        line.length = this.cols;
        return;
      }
      case 'L': case 'M': {
        if (this.y < this.top || this.y > this.bottom) return;
        const buf = this.buf;
        for (let i = 0; i < n(0, 1); i++) {
          if (final === 'L') {
            buf.splice(this.bottom, 1);
            buf.splice(this.y, 0, this.row());
          } else {
            buf.splice(this.y, 1);
            buf.splice(this.bottom, 0, this.row());
          }
        }
        return;
      }
      case 'S': this.scrollUp(n(0, 1)); return;
      case 'T': this.scrollDown(n(0, 1)); return;
      case 'r':
        this.top = clampY(n(0, 1) - 1);
        this.bottom = clampY(n(1, this.rows) - 1);
        this.x = 0;
        this.y = 0;
        return;
      case 's': this.saved = { x: this.x, y: this.y }; return;
      case 'u': this.x = this.saved.x; this.y = this.saved.y; return;
      case 'm': return this.sgr(params);
    }
  }

  private mode(nums: number[], on: boolean): void {
    for (const m of nums) {
      if (m === 25) this.cursorVisible = on;
      if (m === 1049 || m === 1047 || m === 47) {
        if (on && !this.altActive) {
          if (m === 1049) this.saved = { x: this.x, y: this.y };
          this.altActive = true;
          this.alt = this.grid();
          this.altEntered++;
        } else if (!on && this.altActive) {
          this.altActive = false;
          if (m === 1049) {
            this.x = this.saved.x;
            this.y = this.saved.y;
          }
          this.altLeft++;
        }
      }
    }
  }

  private sgr(params: string): void {
    this.sgrSeen.add(params);
    const parts = params === '' ? ['0'] : params.split(';');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string;
      const v = Number(p.split(':')[0] || '0');
      if (v === 0) this.attrs = { ...PLAIN };
      else if (v === 1) this.attrs.bold = true;
      else if (v === 22) this.attrs.bold = false;
      else if (v === 7) this.attrs.inverse = true;
      else if (v === 27) this.attrs.inverse = false;
      else if ((v >= 30 && v <= 37) || (v >= 90 && v <= 97)) this.attrs.fg = String(v);
      else if (v === 39) this.attrs.fg = '';
      else if ((v >= 40 && v <= 47) || (v >= 100 && v <= 107)) this.attrs.bg = String(v);
      else if (v === 49) this.attrs.bg = '';
      else if (v === 38 || v === 48) {
        const kind = parts[i + 1];
        const take = p.includes(':') ? 0 : kind === '5' ? 2 : kind === '2' ? 4 : 0;
        const value = [p, ...parts.slice(i + 1, i + 1 + take)].join(';');
        if (v === 38) this.attrs.fg = value;
        else this.attrs.bg = value;
        i += take;
      }
    }
  }

  private eraseDisplay(mode: number): void {
    const buf = this.buf;
    if (mode === 2 || mode === 3) {
      for (let r = 0; r < this.rows; r++) buf[r] = this.row();
      return;
    }
    if (mode === 0) {
      this.eraseLine(0);
      for (let r = this.y + 1; r < this.rows; r++) buf[r] = this.row();
    } else if (mode === 1) {
      this.eraseLine(1);
      for (let r = 0; r < this.y; r++) buf[r] = this.row();
    }
  }

  private eraseLine(mode: number): void {
    const line = this.buf[this.y] as Cell[];
    const [from, to] = mode === 0 ? [this.x, this.cols] : mode === 1 ? [0, this.x + 1] : [0, this.cols];
    for (let i = from; i < to; i++) line[i] = blank(this.attrs);
  }

  /** One row as text, trailing spaces removed. */
  line(row: number): string {
    return (this.buf[row] ?? []).map((c) => c.ch).join('').trimEnd();
  }

  /** The cells of one row. */
  cells(row: number): readonly Cell[] {
    return this.buf[row] ?? [];
  }

  lines(): string[] {
    return Array.from({ length: this.rows }, (_, i) => this.line(i));
  }

  text(): string {
    return this.lines().join('\n');
  }

  /** The first row containing `what`, or -1. */
  find(what: string | RegExp): number {
    return this.lines().findIndex((l) => (typeof what === 'string' ? l.includes(what) : what.test(l)));
  }
}
