// The bridge daemon: serves protocol v1 on /var/run/flowtop.sock and relays between its clients and
// the filter extension over XPC. It keeps the identity rules (rules.json) and answers the rule
// messages of protocol v1 §5–6: rules-list with `rules` lines carrying the request's ref, rule-add
// and rule-remove with a rule-changed broadcast carrying it. Everything runs on one serial queue.
// NOT YET BUILT OR RUN ON A MAC.
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
    /// The ref of a "remember: always" verdict, by flow, until the extension reports the rule it made.
    private var verdictRefs: [String: String] = [:]
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
        link.onRule = { [weak self] rule, flowID in self?.ruleLearned(rule, flowID: flowID) }
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
        // Flows, then the rule list (protocol v1 "Session" step 4).
        let flows = book.snapshot.compactMap { encodeLine(FlowMessage(flow: $0)) }
        session.subscribed(snapshot: flows + encodeRuleList(store.rules.map(ProtocolRule.init), ref: nil))
        reportSubscribers()
    }

    func verdict(_ session: ClientSession, id: String, allow: Bool, remember: Remember, ref: String?) {
        if let known = book.flow(id), known.pending == nil {
            return session.sendError("not-pending", "flow \"\(id)\" was already decided (\(known.verdict?.action ?? "observed")); a live flow cannot be ended here", ref: ref)
        }
        guard link.isConnected, let filter = link.filter() else {
            return session.sendError("internal", "the filter extension is not connected; its flows were resumed with the default", ref: ref)
        }
        if remember == .always, let ref { verdictRefs[id] = ref }
        filter.decide(flowID: id, allow: allow, remember: remember.rawValue) { [weak self, weak session] code, message in
            guard !code.isEmpty else { return }
            self?.queue.async {
                self?.verdictRefs.removeValue(forKey: id)
                session?.sendError(code, message, ref: ref)
            }
        }
    }

    // MARK: - Rules (protocol v1 §5–6)

    func rulesList(_ session: ClientSession, ref: String?) {
        session.reply(encodeRuleList(store.rules.map(ProtocolRule.init), ref: ref))
    }

    func ruleAdd(_ session: ClientSession, _ addition: RuleAddition, ref: String?) {
        let rule = IdentityRule(id: UUID().uuidString, identity: addition.requirement, action: addition.allow ? "allow" : "block",
                                created: nowMillis(), label: addition.label, note: addition.note)
        let replaced = store.add(rule)
        sendRulesToFilter()
        announce(rule, replacing: replaced, ref: ref)
    }

    func ruleRemove(_ session: ClientSession, id: String, ref: String?) {
        guard let removed = store.remove(id: id) else {
            return session.sendError("unknown-rule", "no rule \"\(id)\"", ref: ref)
        }
        sendRulesToFilter()
        broadcast(RuleChangedMessage(op: "removed", rule: ProtocolRule(removed), ref: ref))
    }

    /// A "remember: always" verdict made a rule in the extension: keep it, and tell every client.
    private func ruleLearned(_ rule: IdentityRule, flowID: String) {
        let replaced = store.add(rule)
        announce(rule, replacing: replaced, ref: verdictRefs.removeValue(forKey: flowID))
    }

    /// rule-changed for a new rule, after `removed` for the rule of the same program it replaced;
    /// both answer the same message, so both carry its ref (protocol v1: added and removed answer
    /// rule-add, rule-remove and remembering verdicts).
    private func announce(_ rule: IdentityRule, replacing replaced: IdentityRule?, ref: String?) {
        if let replaced { broadcast(RuleChangedMessage(op: "removed", rule: ProtocolRule(replaced), ref: ref)) }
        broadcast(RuleChangedMessage(op: "added", rule: ProtocolRule(rule), ref: ref))
    }

    /// The extension's identity rules are replaced by the stored ones; while it is not connected they
    /// are sent on the next connect.
    private func sendRulesToFilter() {
        link.filter()?.loadRules(store.json()) { count in
            log.info("extension holds \(count, privacy: .public) identity rules")
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
        verdictRefs.removeAll()
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
        sendRulesToFilter()
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
