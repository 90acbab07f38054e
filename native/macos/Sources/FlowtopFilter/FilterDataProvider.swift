// The content filter. A new flow is answered from the rule cache when it can be; otherwise, while a
// client is subscribed, it is paused and published (both audit tokens, endpoints, direction). A
// verdict resumes it with resumeFlow(_:with:); a flow nobody answers is resumed with the default at
// its deadline; when the last client goes away everything paused is resumed with the default.
//
// Two orderings matter here (see PendingFlows for the bookkeeping):
//  - A flow is resumable only after its pause verdict has been returned to the system. It is stored
//    and published before handleNewFlow returns .pause(), so anything that decides it in between is
//    kept as owed and applied by settle(_:), which runs once the verdict has been handed back.
//  - A flow whose remote endpoint is not known yet (Apple: the endpoints "may be nil when handleNewFlow
//    is invoked and if so will be populated upon receiving network data", e.g. unconnected UDP) is not
//    published as 0.0.0.0:0 for someone to decide blind: the filter asks to see its first data and
//    judges it then, when the endpoints are there. Such a flow is paused from a data callback and so
//    resumed with a data verdict.
//
// NOT YET BUILT OR RUN ON A MAC. See native/macos/README.md for what has been checked and what not.
import Foundation
import FlowtopShared
import NetworkExtension
import os.log

private let log = Logger(subsystem: FlowtopIDs.filterBundleID, category: "filter")

/// A paused flow and what was published about it (for the snapshot a new subscriber receives).
struct HeldFlow {
    let flow: NEFilterFlow
    let record: FlowRecord
    /// Paused from a data callback rather than handleNewFlow: it must be resumed with a data verdict.
    let pausedInData: Bool
}

@objc(FilterDataProvider)
final class FilterDataProvider: NEFilterDataProvider {
    /// Apple documents no completion for a pause verdict. The system takes the verdict when the
    /// callback returns; settle(_:) runs this long after that, on the state queue. (Unverified on a
    /// Mac that this margin is needed or enough; it only delays decisions that raced the pause.)
    private static let pauseSettle = DispatchTimeInterval.milliseconds(100)
    /// Bytes to see of a flow whose endpoints are unknown: any data fills them in.
    private static let peekBytes = 1

    private enum Judgement {
        case allow, drop
        case pause(id: String)
    }

    private let policy = FilterPolicy.standard
    private var defaultResumption: Resumption { Resumption(allow: policy.defaultAllows, by: "default") }
    /// Serialises pending flows, rules and the subscriber count; resumeFlow is called from here too.
    private let state = DispatchQueue(label: "com.flowtop.filter.state")
    private var pending = PendingFlows<HeldFlow>()
    private var rules = RuleCache()
    private var subscribers = 0
    private var sweeper: DispatchSourceTimer?
    private let identities = CodeIdentityCache()
    /// Listening since main.swift; this provider attaches while its filter runs.
    private let link = BridgeLink.shared

    override func startFilter(completionHandler: @escaping (Error?) -> Void) {
        // nil networks match every address; .any covers TCP and UDP, in and out.
        let everything = NENetworkRule(remoteNetwork: nil, remotePrefix: 0, localNetwork: nil, localPrefix: 0, protocol: .any, direction: .any)
        let settings = NEFilterSettings(rules: [NEFilterRule(networkRule: everything, action: .filterData)], defaultAction: .allow)
        apply(settings) { [weak self] error in
            if let error {
                log.error("applying filter settings failed: \(error.localizedDescription, privacy: .public)")
            } else if let self {
                self.link.attach(self)
                self.startSweeper()
            }
            completionHandler(error)
        }
    }

    override func stopFilter(with reason: NEProviderStopReason, completionHandler: @escaping () -> Void) {
        log.info("stopping (reason \(reason.rawValue, privacy: .public)): resuming every paused flow with the default")
        link.detach(self)
        state.sync {
            sweeper?.cancel()
            sweeper = nil
            resumeAllWithDefault()
        }
        completionHandler()
    }

    override func handleNewFlow(_ flow: NEFilterFlow) -> NEFilterNewFlowVerdict {
        guard let socketFlow = flow as? NEFilterSocketFlow else { return .allow() }
        guard FlowFacts.hasRemoteEndpoint(socketFlow) else {
            return .filterDataVerdict(withFilterInbound: true, peekInboundBytes: Self.peekBytes,
                                      filterOutbound: true, peekOutboundBytes: Self.peekBytes)
        }
        switch judge(socketFlow, pausedInData: false) {
        case .allow: return .allow()
        case .drop: return .drop()
        case let .pause(id):
            defer { settle(id) }
            return .pause()
        }
    }

    // Only flows that handleNewFlow could not judge (unknown endpoints) reach the data callbacks:
    // every verdict given here ends them (allow / drop), or pauses the flow until a decision.
    override func handleOutboundData(from flow: NEFilterFlow, readBytesStartOffset offset: Int, readBytes: Data) -> NEFilterDataVerdict {
        judgeOnFirstData(flow)
    }

    override func handleInboundData(from flow: NEFilterFlow, readBytesStartOffset offset: Int, readBytes: Data) -> NEFilterDataVerdict {
        judgeOnFirstData(flow)
    }

    // Apple requires these overrides. A direction that ends before the filter has judged the flow
    // (no data seen yet) is judged here the same way, rather than let through unjudged.
    override func handleOutboundDataComplete(for flow: NEFilterFlow) -> NEFilterDataVerdict {
        judgeOnFirstData(flow)
    }

    override func handleInboundDataComplete(for flow: NEFilterFlow) -> NEFilterDataVerdict {
        judgeOnFirstData(flow)
    }

    private func judgeOnFirstData(_ flow: NEFilterFlow) -> NEFilterDataVerdict {
        guard let socketFlow = flow as? NEFilterSocketFlow else { return .allow() }
        if !FlowFacts.hasRemoteEndpoint(socketFlow) {
            log.error("flow \(flow.identifier.uuidString, privacy: .public) still has no remote endpoint after its first data")
        }
        switch judge(socketFlow, pausedInData: true) {
        case .allow: return .allow()
        case .drop: return .drop()
        case let .pause(id):
            defer { settle(id) }
            return .pause()
        }
    }

    /// Rules first, then the default when nobody listens, else hold the flow for a client.
    private func judge(_ flow: NEFilterSocketFlow, pausedInData: Bool) -> Judgement {
        var record = FlowFacts.record(for: flow, now: nowMillis())
        let token = FlowFacts.processToken(of: flow)
        // The identity costs Security.framework calls: compute it only if a rule could use it, and
        // outside the state queue so other flows are not held up.
        let identityRulesExist = state.sync { rules.hasIdentityRules }
        let identity = identityRulesExist ? identities.requirement(for: token) : nil

        return state.sync { () -> Judgement in
            if let hit = rules.verdict(token: token, identity: { identity }) {
                record.verdict = Verdict(action: hit.allow ? "allow" : "block", by: "rule", ruleId: hit.ruleId)
                link.publish(flow: record)
                return hit.allow ? .allow : .drop
            }
            guard subscribers > 0, link.isConnected else {
                record.verdict = Verdict(action: policy.defaultAction, by: "default")
                link.publish(flow: record)
                return policy.defaultAllows ? .allow : .drop
            }
            let deadline = record.time + policy.timeoutMs(forProtocol: record.protocol)
            record.pending = PendingInfo(deadline: deadline)
            pending.add(id: record.id, flow: HeldFlow(flow: flow, record: record, pausedInData: pausedInData), deadline: deadline, token: token)
            link.publish(flow: record)
            return .pause(id: record.id)
        }
    }

    /// Called as the pause verdict is handed back: from then on the flow may be resumed, and a
    /// decision that came in the meantime is applied.
    private func settle(_ id: String) {
        state.asyncAfter(deadline: .now() + Self.pauseSettle) { [self] in
            if let due = pending.markPaused(id) { resume(due.entry, due.resumption) }
        }
    }

    // MARK: - Called by BridgeLink (any queue)

    func setSubscriberCount(_ count: Int) {
        state.async { [self] in
            subscribers = max(0, count)
            if subscribers == 0 { resumeAllWithDefault() }
        }
    }

    func bridgeDisconnected() {
        setSubscriberCount(0)
    }

    /// Applies a client's verdict. Returns ("", "") when applied (or kept until the flow's pause has
    /// been returned), else a protocol error code and words.
    func decide(flowID: String, allow: Bool, remember: Remember) -> (code: String, message: String) {
        let unknown = ("unknown-flow", "no paused flow \"\(flowID)\" (already decided, timed out, or never paused)")
        var identity: String?
        if remember == .always {
            // Read before deciding, and outside the state queue: a refusal leaves the flow paused.
            guard let held = state.sync(execute: { pending.peek(flowID) }) else { return unknown }
            identity = identities.requirement(for: held.token)
            if identity == nil {
                return ("not-supported", "cannot remember \"always\": the program's code signature could not be verified from its audit token")
            }
        }
        return state.sync { () -> (code: String, message: String) in
            guard let held = pending.peek(flowID) else { return unknown }
            var rule: IdentityRule?
            if remember == .always, let identity {
                rule = IdentityRule(id: UUID().uuidString, identity: identity, action: allow ? "allow" : "block", created: nowMillis())
            }
            let mine = Resumption(allow: allow, by: "user", ruleId: rule?.id)
            switch pending.claim(flowID, with: mine) {
            case .notPending: return unknown
            case let .resumeNow(entry): resume(entry, mine)
            case .resumeWhenPaused: break
            }
            let siblings = Resumption(allow: allow, by: "rule", ruleId: rule?.id)
            switch remember {
            case .once:
                break
            case .process:
                if let processToken = held.token {
                    rules.rememberProcess(token: processToken, allow: allow)
                    for other in pending.claim(token: processToken, with: siblings) { resume(other, siblings) }
                }
            case .always:
                if let rule {
                    rules.add(rule)
                    link.publish(rule: rule, learnedFrom: flowID)
                    if let processToken = held.token {
                        for other in pending.claim(token: processToken, with: siblings) { resume(other, siblings) }
                    }
                }
            }
            return ("", "")
        }
    }

    func loadRules(_ loaded: [IdentityRule]) -> Int {
        state.sync {
            rules.replaceIdentityRules(loaded)
            return loaded.count
        }
    }

    func pendingSnapshot() -> [FlowRecord] {
        state.sync { pending.all.map(\.flow.record) }
    }

    // MARK: - Private (on the state queue)

    private func startSweeper() {
        state.async { [self] in
            guard sweeper == nil else { return }
            let timer = DispatchSource.makeTimerSource(queue: state)
            timer.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250), leeway: .milliseconds(50))
            timer.setEventHandler { [weak self] in self?.resumeExpired() }
            timer.resume()
            sweeper = timer
        }
    }

    private func resumeExpired() {
        let byDefault = defaultResumption
        for entry in pending.expired(now: nowMillis(), with: byDefault) { resume(entry, byDefault) }
    }

    private func resumeAllWithDefault() {
        let byDefault = defaultResumption
        for entry in pending.claimAll(with: byDefault) { resume(entry, byDefault) }
    }

    private func resume(_ entry: PendingFlows<HeldFlow>.Entry, _ resumption: Resumption) {
        let held = entry.flow
        // The verdict's class follows the callback that paused the flow.
        if held.pausedInData {
            resumeFlow(held.flow, with: resumption.allow ? NEFilterDataVerdict.allow() : NEFilterDataVerdict.drop())
        } else {
            resumeFlow(held.flow, with: resumption.allow ? NEFilterNewFlowVerdict.allow() : NEFilterNewFlowVerdict.drop())
        }
        let verdict = Verdict(action: resumption.allow ? "allow" : "block", by: resumption.by, ruleId: resumption.ruleId)
        link.publish(verdict: VerdictMessage(id: entry.id, time: nowMillis(), verdict: verdict))
    }
}
