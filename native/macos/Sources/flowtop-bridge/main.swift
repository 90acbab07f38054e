// flowtop-bridge: a launchd daemon (root) between the sandboxed filter extension (XPC) and flowtop's
// clients (protocol v1 on /var/run/flowtop.sock). NOT YET BUILT OR RUN ON A MAC.
import Darwin
import Foundation

// Writes to a vanished client must fail with EPIPE, not end the daemon.
signal(SIGPIPE, SIG_IGN)

let bridge = Bridge()
do {
    try bridge.start()
} catch {
    FileHandle.standardError.write(Data("flowtop-bridge: \(error)\n".utf8))
    exit(1)
}

signal(SIGTERM, SIG_IGN)
let termination = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .main)
termination.setEventHandler {
    bridge.stop()
    exit(0)
}
termination.resume()
dispatchMain()
