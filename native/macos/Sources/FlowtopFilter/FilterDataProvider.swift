// The content filter. handleNewFlow answers from the rule cache when it can; otherwise, while a
// client is subscribed, it pauses the flow and publishes it (both audit tokens, endpoints,
// direction). A verdict resumes the flow with resumeFlow(_:with:); a flow nobody answers is resumed
// with the default at its deadline; when the last client goes away everything paused is resumed
// with the default. Every paused flow is resumed exactly once: PendingFlows hands each out once.
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
}

@objc(FilterDataProvider)
final class FilterDataProvider: NEFilterDataProvider {
    private let policy = FilterPolicy.standard
    /// Serialises pending flows, rules and the subscriber count; resumeFlow is called from here too.
    private let state = DispatchQueue(label: "com.flowtop.filter.state")
    private var pending = PendingFlows<HeldFlow>()
    private var rules = RuleCache()
    private var subscribers = 0
    private var sweeper: DispatchSourceTimer?
    private let identities = CodeIdentityCache()
    /// Set once in init, before the system can call anything else.
    private var link: BridgeLink!

    override init() {
        super.init()
        link = BridgeLink(provider: self)
    }

    override func startFilter(completionHandler: @escaping (Error?) -> Void) {
        // nil networks match every address; .any covers TCP and UDP, in and out.
        let everything = NENetworkRule(remoteNetwork: nil, remotePrefix: 0, localNetwork: nil, localPrefix: 0, protocol: .any, direction: .any)
        let settings = NEFilterSettings(rules: [NEFilterRule(networkRule: everything, action: .filterData)], defaultAction: .allow)
        apply(settings) { [weak self] error in
            if let error {
                log.error("applying filter settings failed: \(error.localizedDescription, privacy: .public)")
            } else {
                self?.startServices()
            }
            completionHandler(error)
        }
    }

    override func stopFilter(with reason: NEProviderStopReason, completionHandler: @escaping () -> Void) {
        log.info("stopping (reason \(reason.rawValue, privacy: .public)): resuming every paused flow with the default")
        state.sync {
            sweeper?.cancel()
            sweeper = nil
            resumeAllWithDefault()
        }
        link.stop()
        completionHandler()
    }

    override func handleNewFlow(_ flow: NEFilterFlow) -> NEFilterNewFlowVerdict {
        guard let socketFlow = flow as? NEFilterSocketFlow else { return .allow() }
        var record = FlowFacts.record(for: socketFlow, now: nowMillis())
        let token = FlowFacts.processToken(of: flow)
        // The identity costs Security.framework calls: compute it only if a rule could use it, and
        // outside the state queue so other flows are not held up.
        let identityRulesExist = state.sync { rules.hasIdentityRules }
        let identity = identityRulesExist ? identities.requirement(for: token) : nil

        return state.sync { () -> NEFilterNewFlowVerdict in
            if let hit = rules.verdict(token: token, identity: { identity }) {
                record.verdict = Verdict(action: hit.allow ? "allow" : "block", by: "rule", ruleId: hit.ruleId)
                link.publish(flow: record)
                return hit.allow ? .allow() : .drop()
            }
            guard subscribers > 0, link.isConnected else {
                record.verdict = Verdict(action: policy.defaultAction, by: "default")
                link.publish(flow: record)
                return policy.defaultAllows ? .allow() : .drop()
            }
            let deadline = record.time + policy.timeoutMs(forProtocol: record.protocol)
            record.pending = PendingInfo(deadline: deadline)
            pending.add(id: record.id, flow: HeldFlow(flow: flow, record: record), deadline: deadline, token: token)
            // Published before returning .pause(); a verdict for it is applied on this queue, after
            // this block, and a client needs at least one XPC round trip to answer.
            link.publish(flow: record)
            return .pause()
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

    /// Applies a client's verdict. Returns ("", "") when applied, else a protocol error code and words.
    func decide(flowID: String, allow: Bool, remember: Remember) -> (code: String, message: String) {
        let unknown = ("unknown-flow", "no paused flow \"\(flowID)\" (already decided, timed out, or never paused)")
        var identity: String?
        if remember == .always {
            // Read before taking the flow, and outside the state queue: a refusal leaves it paused.
            guard let held = state.sync(execute: { pending.peek(flowID) }) else { return unknown }
            identity = identities.requirement(for: held.token)
            if identity == nil {
                return ("not-supported", "cannot remember \"always\": the program's code signature could not be verified from its audit token")
            }
        }
        return state.sync { () -> (code: String, message: String) in
            guard let entry = pending.take(flowID) else { return unknown }
            var ruleId: String?
            switch remember {
            case .once:
                break
            case .process:
                if let processToken = entry.token {
                    rules.rememberProcess(token: processToken, allow: allow)
                    for other in pending.take(token: processToken) { resume(other, allow: allow, by: "rule") }
                }
            case .always:
                if let identity {
                    let rule = IdentityRule(id: UUID().uuidString, identity: identity, action: allow ? "allow" : "block", created: nowMillis())
                    rules.add(rule)
                    ruleId = rule.id
                    link.publish(rule: rule)
                    if let processToken = entry.token {
                        for other in pending.take(token: processToken) { resume(other, allow: allow, by: "rule", ruleId: rule.id) }
                    }
                }
            }
            resume(entry, allow: allow, by: "user", ruleId: ruleId)
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

    private func startServices() {
        link.start()
        state.async { [self] in
            let timer = DispatchSource.makeTimerSource(queue: state)
            timer.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250), leeway: .milliseconds(50))
            timer.setEventHandler { [weak self] in self?.resumeExpired() }
            timer.resume()
            sweeper = timer
        }
    }

    private func resumeExpired() {
        for entry in pending.expired(now: nowMillis()) {
            resume(entry, allow: policy.defaultAllows, by: "default")
        }
    }

    private func resumeAllWithDefault() {
        for entry in pending.takeAll() {
            resume(entry, allow: policy.defaultAllows, by: "default")
        }
    }

    private func resume(_ entry: PendingFlows<HeldFlow>.Entry, allow: Bool, by: String, ruleId: String? = nil) {
        resumeFlow(entry.flow.flow, with: allow ? NEFilterNewFlowVerdict.allow() : NEFilterNewFlowVerdict.drop())
        let verdict = Verdict(action: allow ? "allow" : "block", by: by, ruleId: ruleId)
        link.publish(verdict: VerdictMessage(id: entry.id, time: nowMillis(), verdict: verdict))
    }
}
