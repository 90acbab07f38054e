// React hooks over a HistorySource: the page the history view asks for (loaded off the render path,
// the previous page kept on screen until the next arrives, refreshed while the view is open), and
// the events recorded while the TUI runs (polled, handed on as they appear).
import { useEffect, useRef, useState } from 'react';
import type { EventEntry } from '../history/query.js';
import type { HistoryPage, PageQuery } from '../history/view-page.js';
import { samePageQuery } from '../state/history-view.js';
import type { HistoryLoad } from '../ui/HistoryView.js';
import type { HistorySource } from './history-source.js';
import type { SourceInfo } from '../state/types.js';

export interface Clock {
  now(): number;
}

/** `query` undefined: the view is not shown, nothing is read. `file`: the file the source reads now
 *  (it changes when the agent says where it records); pages of another file are not shown. */
export function useHistoryPage(source: HistorySource | undefined, query: PageQuery | undefined, clock: Clock, refreshMs = 15_000, file = source?.path): HistoryLoad {
  const [load, setLoad] = useState<HistoryLoad>({ loading: false });
  // The query object changes every render; its fields are what matter.
  const stable = useRef<PageQuery | undefined>(undefined);
  if (query === undefined || stable.current === undefined || !samePageQuery(stable.current, query)) stable.current = query;
  const wanted = stable.current;
  // Pages already read, so Esc back to the programs (or w round to a window) shows at once while
  // it is read again.
  const seen = useRef(new Map<string, HistoryPage>());
  useEffect(() => {
    if (!source || !wanted) return;
    let live = true;
    let timer: NodeJS.Timeout | undefined;
    const key = JSON.stringify([file, wanted]);
    const known = seen.current.get(key);
    if (known) setLoad({ page: known, loading: true });
    const read = () => {
      setLoad((l) => (l.loading ? l : { ...l, loading: true }));
      void source.page(wanted, clock.now()).then((r) => {
        if (!live) return;
        if (r.ok) {
          seen.current.delete(key);
          seen.current.set(key, r.page);
          if (seen.current.size > 16) seen.current.delete(seen.current.keys().next().value!);
        }
        setLoad((l) => (r.ok ? { page: r.page, loading: false } : { ...(l.page ? { page: l.page } : {}), loading: false, unavailable: r.unavailable }));
        timer = setTimeout(read, refreshMs);
      });
    };
    read();
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
  }, [source, wanted, clock, refreshMs, file]);
  if (!wanted) return { ...load, loading: false };
  // The first frame after the query changed, before the effect: a page read before shows already.
  const known = load.page && samePageQuery(load.page.query, wanted) ? undefined : seen.current.get(JSON.stringify([file, wanted]));
  return known ? { page: known, loading: true } : load;
}

/** The file the source reads, after telling it what the first connected agent's hello says of its
 *  history (hello.mode.history). */
export function useAgentHistoryFile(source: HistorySource | undefined, sources: ReadonlyMap<string, SourceInfo>): string | undefined {
  let said: { socket: string; history: string | undefined } | undefined;
  for (const info of sources.values()) {
    // A fleet host's hello names a file on its own machine, not here.
    if (info.status.state !== 'connected' || !info.hello || info.hello.mode?.passive || info.fleet) continue;
    said = { socket: info.id, history: info.hello.mode?.history };
    break;
  }
  const [file, setFile] = useState(source?.path);
  useEffect(() => {
    if (!source || !said) return;
    source.followAgent(said.history, said.socket);
    setFile(source.path);
  }, [source, said?.socket, said?.history]);
  return file;
}

/** Calls `onEvents` with the events recorded after the TUI started, as they appear. */
export function useHistoryEvents(source: HistorySource | undefined, clock: Clock, onEvents: (events: EventEntry[]) => void, pollMs = 2_000): void {
  const handler = useRef(onEvents);
  handler.current = onEvents;
  // From the first frame on (an effect may run later than something recorded meanwhile).
  const [started] = useState(() => clock.now());
  useEffect(() => {
    if (!source) return;
    let live = true;
    let after = started;
    let timer: NodeJS.Timeout | undefined;
    const poll = () => {
      void source.events(after, clock.now()).then((r) => {
        if (!live) return;
        if (r.ok && r.events.length > 0) {
          after = Math.max(after, ...r.events.map((e) => e.time));
          handler.current(r.events);
        }
        // No file (yet), or not readable: look again, less often.
        timer = setTimeout(poll, r.ok ? pollMs : pollMs * 5);
      });
    };
    timer = setTimeout(poll, pollMs);
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
  }, [source, clock, pollMs, started]);
}
