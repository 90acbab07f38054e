// `flowtop rules list | head`: once the reader closes the pipe, the next write fails with EPIPE,
// which Node reports as an unhandled 'error' event (a stack trace). Nothing more can reach the
// reader, so the command ends quietly instead (the agent keeps running: see keepRunning).
let installed = false;

export function exitQuietlyOnClosedPipe(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr], options: { keepRunning?: boolean } = {}): void {
  if (installed) return;
  installed = true;
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      // A long-running command (the agent, logging through `| tee`) outlives its reader: its lines
      // are lost, but it must not stop half-way through undoing its firewall rules and programs.
      if (options.keepRunning) return;
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') process.exit(0);
      // Any other write failure: say so where it can still be read, then stop.
      try {
        process.stderr.write(`flowtop: cannot write output: ${error.message}\n`);
      } catch { /* stderr is gone too */ }
      process.exit(1);
    });
  }
}
