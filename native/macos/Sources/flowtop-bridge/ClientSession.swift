// One protocol v1 client on the socket: hello on connect, then subscribe, then verdicts and rule
// messages. Framing is
// bounded (64 KiB a line), every bad message is answered with an error and skipped, too many errors
// or a client too slow to read closes it. All methods run on the bridge queue.
// NOT YET BUILT OR RUN ON A MAC.
import Darwin
import FlowtopShared
import Foundation

protocol SessionOwner: AnyObject {
    func subscribe(_ session: ClientSession, ref: String?)
    func verdict(_ session: ClientSession, id: String, allow: Bool, remember: Remember, ref: String?)
    func ruleAdd(_ session: ClientSession, _ rule: RuleAddition, ref: String?)
    func ruleRemove(_ session: ClientSession, id: String, ref: String?)
    func rulesList(_ session: ClientSession, ref: String?)
    func closed(_ session: ClientSession, reason: String)
}

final class ClientSession {
    static let maxErrors = 50
    static let maxQueuedBytes = 8 * 1024 * 1024
    static let subscribeTimeout: TimeInterval = 10

    let id: Int
    let peer: PeerCredentials?
    enum Phase { case greeted, subscribed, closed }
    private(set) var phase = Phase.greeted
    private let fd: Int32
    private let queue: DispatchQueue
    private weak var owner: SessionOwner?
    private var framer = LineFramer()
    private var errors = 0
    private var outbox = Data()
    private var reader: DispatchSourceRead?
    private var writer: DispatchSourceWrite?
    private var writerActive = false

    init(id: Int, fd: Int32, queue: DispatchQueue, owner: SessionOwner) {
        self.id = id
        self.fd = fd
        self.queue = queue
        self.owner = owner
        self.peer = PeerAccess.credentials(of: fd)
    }

    func start(hello: Data) {
        let reader = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        reader.setEventHandler { [weak self] in self?.readAvailable() }
        reader.resume()
        self.reader = reader
        let writer = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        writer.setEventHandler { [weak self] in self?.flush() }
        self.writer = writer
        send(hello)
        queue.asyncAfter(deadline: .now() + Self.subscribeTimeout) { [weak self] in
            guard let self, self.phase == .greeted else { return }
            self.sendError("out-of-order", "no subscribe within \(Int(Self.subscribeTimeout)) s of hello")
            self.close("no subscribe")
        }
    }

    /// A broadcast: sent once subscribed, dropped before.
    func deliver(_ line: Data) {
        if phase == .subscribed { send(line) }
    }

    /// A reply to this client only (the rule list it asked for).
    func reply(_ lines: [Data]) {
        for line in lines { send(line) }
    }

    /// Sends the snapshot and starts the live stream. Called on the bridge queue, so no broadcast
    /// can fall between the two.
    func subscribed(snapshot: [Data]) {
        guard phase == .greeted else { return }
        for line in snapshot { send(line) }
        if phase == .greeted { phase = .subscribed }
    }

    func sendError(_ code: String, _ message: String, ref: String? = nil) {
        if let line = encodeLine(ErrorMessage(code: code, message: message, ref: ref)) { send(line) }
    }

    func close(_ reason: String) {
        guard phase != .closed else { return }
        phase = .closed
        flushOnce()
        teardown()
        owner?.closed(self, reason: reason)
    }

    /// Cancels both sources and closes the descriptor once neither watches it any more.
    private func teardown() {
        guard let reader, let writer else {
            Darwin.close(fd)
            return
        }
        var watching = 2
        let fd = self.fd
        let released = { watching -= 1; if watching == 0 { Darwin.close(fd) } }
        reader.setCancelHandler(handler: released)
        writer.setCancelHandler(handler: released)
        reader.cancel()
        // A suspended source never delivers its cancellation: resume it first.
        if !writerActive { writer.resume() }
        writer.cancel()
    }

    // MARK: - Reading

    private func readAvailable() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &buffer, buffer.count)
        if n == 0 {
            // The peer may only have closed its half: a partial last line can still be answered.
            if framer.bufferedBytes > 0 { sendError("incomplete-line", "the stream ended inside a line (\(framer.bufferedBytes) bytes); it is skipped") }
            return close("peer closed the connection")
        }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            return close("read failed: \(String(cString: strerror(errno)))")
        }
        for event in framer.push(Data(buffer[0..<n])) {
            guard phase != .closed else { return }
            switch event {
            case .tooLong(let limit):
                misbehaved(RequestError(code: "line-too-long", message: "a line is longer than \(limit) bytes; it is skipped"))
            case .line(let line):
                switch decodeClientRequest(line) {
                case .failure(let error): misbehaved(error)
                case .success(let request): handle(request)
                }
            }
        }
    }

    private func handle(_ request: ClientRequest) {
        switch request {
        case let .subscribe(version, _, _, ref):
            guard phase == .greeted else { return misbehaved(RequestError(code: "out-of-order", message: "already subscribed", ref: ref)) }
            guard version == ProtocolV1.version else {
                sendError("version-mismatch", "this extension speaks protocol \(ProtocolV1.version); the client asked for \(version)", ref: ref)
                return close("version mismatch")
            }
            owner?.subscribe(self, ref: ref)
        case let .verdict(id, allow, remember, ref):
            guard phase == .subscribed else { return misbehaved(RequestError(code: "out-of-order", message: "\"verdict\" before subscribe", ref: ref)) }
            owner?.verdict(self, id: id, allow: allow, remember: remember, ref: ref)
        case let .ruleAdd(rule, ref):
            guard phase == .subscribed else { return misbehaved(RequestError(code: "out-of-order", message: "\"rule-add\" before subscribe", ref: ref)) }
            owner?.ruleAdd(self, rule, ref: ref)
        case let .ruleRemove(id, ref):
            guard phase == .subscribed else { return misbehaved(RequestError(code: "out-of-order", message: "\"rule-remove\" before subscribe", ref: ref)) }
            owner?.ruleRemove(self, id: id, ref: ref)
        case let .rulesList(ref):
            guard phase == .subscribed else { return misbehaved(RequestError(code: "out-of-order", message: "\"rules-list\" before subscribe", ref: ref)) }
            owner?.rulesList(self, ref: ref)
        case let .unsupported(reason, ref):
            guard phase == .subscribed else { return misbehaved(RequestError(code: "out-of-order", message: "only subscribe is accepted before subscribe", ref: ref)) }
            sendError("not-supported", reason, ref: ref)
        }
    }

    private func misbehaved(_ error: RequestError) {
        errors += 1
        sendError(error.code, error.message, ref: error.ref)
        if errors >= Self.maxErrors {
            sendError("too-many-errors", "\(errors) protocol errors: closing the connection")
            close("too many protocol errors")
        }
    }

    // MARK: - Writing

    private func send(_ line: Data) {
        guard phase != .closed else { return }
        if outbox.count + line.count > Self.maxQueuedBytes {
            // Not close(): that would try to flush what cannot be sent.
            phase = .closed
            outbox.removeAll()
            teardown()
            owner?.closed(self, reason: "too slow: \(Self.maxQueuedBytes) bytes waiting to be sent")
            return
        }
        outbox.append(line)
        flush()
    }

    private func flush() {
        flushOnce()
        if outbox.isEmpty, writerActive {
            writer?.suspend()
            writerActive = false
        } else if !outbox.isEmpty, !writerActive, phase != .closed {
            writer?.resume()
            writerActive = true
        }
    }

    private func flushOnce() {
        while !outbox.isEmpty {
            let written = outbox.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written > 0 {
                outbox.removeFirst(written)
            } else {
                if written < 0, errno == EINTR { continue }
                return // EAGAIN: wait for the write source; other errors surface as a read of 0
            }
        }
    }
}
