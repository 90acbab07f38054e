// `flowtop rules list | head`: once the reader closes the pipe, the next write fails with EPIPE,
// which Node reports as an unhandled 'error' event (a stack trace). Nothing more can reach the
// reader, so the command ends quietly instead.
let installed = false;

export function exitQuietlyOnClosedPipe(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  if (installed) return;
  installed = true;
  for (const stream of streams) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE' || error.code === 'ERR_STREAM_DESTROYED') process.exit(0);
      // Any other write failure: say so where it can still be read, then stop.
      try {
        process.stderr.write(`flowtop: cannot write output: ${error.message}\n`);
      } catch { /* stderr is gone too */ }
      process.exit(1);
    });
  }
}
