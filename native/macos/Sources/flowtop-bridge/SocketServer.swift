// The Unix socket the bridge serves protocol v1 on. Plain POSIX calls on a DispatchSource, so there
// is no dependency beyond the OS. NOT YET BUILT OR RUN ON A MAC.
import Darwin
import FlowtopShared
import Foundation

enum SocketError: Error, CustomStringConvertible {
    case system(String, Int32)
    case notASocket(String)
    case inUse(String)

    var description: String {
        switch self {
        case let .system(call, code): return "\(call): \(String(cString: strerror(code)))"
        case let .notASocket(path): return "\(path) exists and is not a socket: refusing to replace it"
        case let .inUse(path): return "another process accepts connections on \(path): is a second bridge running?"
        }
    }
}

final class SocketServer {
    let path: String
    private let queue: DispatchQueue
    private var fd: Int32 = -1
    private var source: DispatchSourceRead?
    var onAccept: (Int32) -> Void = { _ in }

    init(path: String, queue: DispatchQueue) {
        self.path = path
        self.queue = queue
    }

    /// Binds and listens; the file becomes root:<group> 0660 (root:wheel 0600 without the group).
    func start(group: gid_t?) throws {
        var address = try Self.address(path)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw SocketError.notASocket(path) }
            // Replace a socket left by a dead process, never one that someone still serves.
            guard !Self.accepts(&address) else { throw SocketError.inUse(path) }
            unlink(path)
        }
        fd = socket(AF_UNIX, SOCK_STREAM, 0)
        guard fd >= 0 else { throw SocketError.system("socket", errno) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)

        // Nobody but root may connect before the mode and owner are set.
        let oldMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard bound == 0 else { throw SocketError.system("bind \(path)", errno) }
        if let group {
            guard chown(path, 0, group) == 0 else { throw SocketError.system("chown \(path)", errno) }
            guard chmod(path, 0o660) == 0 else { throw SocketError.system("chmod \(path)", errno) }
        }
        guard listen(fd, 32) == 0 else { throw SocketError.system("listen", errno) }

        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [weak self] in self?.acceptAll() }
        source.resume()
        self.source = source
    }

    private static func address(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw SocketError.system("socket path too long", ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        address.sun_len = UInt8(MemoryLayout<sockaddr_un>.size)
        return address
    }

    /// Whether a live process accepts connections on the socket at `address`.
    private static func accepts(_ address: inout sockaddr_un) -> Bool {
        let probe = socket(AF_UNIX, SOCK_STREAM, 0)
        guard probe >= 0 else { return false }
        defer { close(probe) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return result == 0
    }

    func stop() {
        source?.cancel()
        source = nil
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(path)
    }

    private func acceptAll() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return } // EAGAIN: drained
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            var on: Int32 = 1
            // A client that disappears must not kill the daemon with SIGPIPE.
            _ = setsockopt(client, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
            onAccept(client)
        }
    }
}
