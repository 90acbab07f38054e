// The bridge daemon: serves protocol v1 on /var/run/flowtop.sock and relays between its clients and
// the filter extension over XPC. Everything runs on one serial queue. NOT YET BUILT OR RUN ON A MAC.
import Darwin
import FlowtopShared
import FlowtopXPC
import Foundation
import os.log

private let log = Logger(subsystem: FlowtopIDs.bridgeIdentifier, category: "bridge")

final class Bridge: SessionOwner {
    static let maxClients = 64
    let queue = DispatchQueue(label: "com.flowtop.bridge")
    private let policy = FilterPolicy.standard
    private let server: SocketServer
    private let link: FilterLink
    private var store = RuleStore()
    private var book = FlowBook()
    private var sessions: [Int: ClientSession] = [:]
    private var nextID = 1
    private var group: gid_t?
    private var reportedSubscribers = -1
    /// Looked up once: the host name can take a DNS round trip.
    private let hostName = ProcessInfo.processInfo.hostName

    init(socketPath: String = FlowtopIDs.socketPath) {
        server = SocketServer(path: socketPath, queue: queue)
        link = FilterLink(queue: queue)
    }

    func start() throws {
        group = PeerAccess.groupID(named: FlowtopIDs.groupName)
        if group == nil {
            log.error("group \"\(FlowtopIDs.groupName, privacy: .public)\" does not exist: only root can use the socket (see README: dseditgroup)")
        }
        link.onFlow = { [weak self] flow in self?.flowSeen(flow) }
        link.onVerdict = { [weak self] verdict in self?.flowDecided(verdict) }
        link.onLost = { [weak self] in self?.filterLost() }
        link.onRule = { [weak self] rule in self?.store.add(rule) }
        link.onConnected = { [weak self] in self?.filterConnected() }
        server.onAccept = { [weak self] fd in self?.accept(fd) }
        try queue.sync { try server.start(group: group) }
        queue.async { self.link.connect() }
    }

    func stop() {
        queue.sync {
            for session in Array(sessions.values) { session.close("bridge stopping") }
            server.stop()
            link.stop()
        }
    }

    // MARK: - Clients

    private func accept(_ fd: Int32) {
        let session = ClientSession(id: nextID, fd: fd, queue: queue, owner: self)
        nextID += 1
        guard sessions.count < Self.maxClients else {
            session.start(hello: helloLine())
            session.sendError("internal", "too many clients (limit \(Self.maxClients)); try again later")
            session.close("too many clients")
            return
        }
        sessions[session.id] = session
        session.start(hello: helloLine())
    }

    func subscribe(_ session: ClientSession, ref: String?) {
        if let refusal = PeerAccess.refusal(for: session.peer, group: group) {
            session.sendError("not-authorised", refusal, ref: ref)
            return session.close("not authorised")
        }
        session.subscribed(snapshot: book.snapshot.compactMap { encodeLine(FlowMessage(flow: $0)) })
        reportSubscribers()
    }

    func verdict(_ session: ClientSession, id: String, allow: Bool, remember: Remember, ref: String?) {
        if let known = book.flow(id), known.pending == nil {
            return session.sendError("not-pending", "flow \"\(id)\" was already decided (\(known.verdict?.action ?? "observed")); a live flow cannot be ended here", ref: ref)
        }
        guard link.isConnected, let filter = link.filter() else {
            return session.sendError("internal", "the filter extension is not connected; its flows were resumed with the default", ref: ref)
        }
        filter.decide(flowID: id, allow: allow, remember: remember.rawValue) { [weak self, weak session] code, message in
            guard !code.isEmpty else { return }
            self?.queue.async { session?.sendError(code, message, ref: ref) }
        }
    }

    func closed(_ session: ClientSession, reason: String) {
        sessions.removeValue(forKey: session.id)
        log.info("client \(session.id, privacy: .public) closed: \(reason, privacy: .public)")
        reportSubscribers()
    }

    // MARK: - Filter

    private func flowSeen(_ flow: FlowRecord) {
        book.record(flow)
        broadcast(FlowMessage(flow: flow))
    }

    private func flowDecided(_ verdict: VerdictMessage) {
        book.apply(verdict)
        broadcast(verdict)
    }

    /// The extension resumes every paused flow with the default when the bridge goes away; say so.
    private func filterLost() {
        for id in book.pendingIDs {
            flowDecided(VerdictMessage(id: id, time: nowMillis(), verdict: Verdict(action: policy.defaultAction, by: "default")))
        }
    }

    private func filterConnected() {
        reportedSubscribers = -1
        // After a bridge restart the extension may still hold paused flows: learn them.
        link.filter()?.pendingFlows { [weak self] json in
            let flows = (try? JSONDecoder().decode([FlowRecord].self, from: json)) ?? []
            self?.queue.async { flows.forEach { self?.flowSeen($0) } }
        }
        link.filter()?.loadRules(store.json()) { count in
            log.info("extension holds \(count, privacy: .public) identity rules")
        }
        reportSubscribers()
    }

    /// Tells the extension how many clients listen; 0 makes it resume everything paused.
    private func reportSubscribers() {
        let count = sessions.values.filter { $0.phase == .subscribed }.count
        guard count != reportedSubscribers, let filter = link.filter() else { return }
        reportedSubscribers = count
        filter.setSubscriberCount(count)
    }

    private func broadcast<T: Encodable>(_ message: T) {
        guard let line = encodeLine(message) else { return }
        for session in sessions.values { session.deliver(line) }
    }

    private func helloLine() -> Data {
        let host = hostName
        let version = Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String ?? "0.1.0"
        let hello = HelloMessage(version: version, host: host, defaultAction: policy.defaultAction, timeoutMs: Int(policy.tcpTimeoutMs))
        return encodeLine(hello) ?? Data()
    }
}
