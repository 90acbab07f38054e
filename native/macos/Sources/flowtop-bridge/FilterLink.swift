// The bridge's end of the XPC link: connects to the extension's Mach service, checks that the peer is
// our signed extension, and reconnects with a capped backoff when the extension restarts.
// NOT YET BUILT OR RUN ON A MAC.
import FlowtopShared
import FlowtopXPC
import Foundation
import os.log

private let log = Logger(subsystem: FlowtopIDs.bridgeIdentifier, category: "xpc")

final class FilterLink: NSObject, BridgeEvents {
    /// All callbacks run on `queue`.
    var onFlow: (FlowRecord) -> Void = { _ in }
    var onVerdict: (VerdictMessage) -> Void = { _ in }
    /// A rule the extension learned from a verdict, and the flow that verdict was for.
    var onRule: (IdentityRule, String) -> Void = { _, _ in }
    /// A (re)connection: resend rules and the subscriber count.
    var onConnected: () -> Void = {}
    /// The link dropped: the extension has resumed its paused flows with the default.
    var onLost: () -> Void = {}

    private let queue: DispatchQueue
    private var connection: NSXPCConnection?
    private var retryDelay: TimeInterval = 1
    private var stopped = false

    init(queue: DispatchQueue) {
        self.queue = queue
    }

    var isConnected: Bool { connection != nil }

    /// On `queue`.
    func connect() {
        guard !stopped, connection == nil else { return }
        guard let teamID = SelfSignature.teamID(),
              let requirement = PeerRequirement.forIdentifier(FlowtopIDs.filterBundleID, teamID: teamID)
        else {
            log.error("the bridge has no Team ID in its signature: it will not talk to any extension")
            return
        }
        let c = NSXPCConnection(machServiceName: FlowtopIDs.machServiceName(teamID: teamID), options: [])
        // The extension must be ours: same team, the filter's identifier.
        c.setCodeSigningRequirement(requirement)
        c.remoteObjectInterface = NSXPCInterface(with: FilterControl.self)
        c.exportedInterface = NSXPCInterface(with: BridgeEvents.self)
        c.exportedObject = self
        c.invalidationHandler = { [weak self, weak c] in self?.queue.async { self?.lost(c) } }
        c.interruptionHandler = { [weak self, weak c] in self?.queue.async { self?.lost(c) } }
        connection = c
        c.resume()
        // XPC connects lazily, on the first message: these are it.
        onConnected()
    }

    func stop() {
        stopped = true
        connection?.invalidate()
        connection = nil
    }

    /// A proxy whose errors are logged; nil while disconnected.
    func filter() -> FilterControl? {
        connection?.remoteObjectProxyWithErrorHandler { error in
            log.error("calling the extension failed: \(error.localizedDescription, privacy: .public)")
        } as? FilterControl
    }

    private func lost(_ c: NSXPCConnection?) {
        guard let c, c === connection else { return }
        connection = nil
        c.invalidate()
        onLost()
        let delay = retryDelay
        retryDelay = min(retryDelay * 2, 30)
        log.info("extension link lost; retrying in \(delay, privacy: .public) s")
        queue.asyncAfter(deadline: .now() + delay) { [weak self] in self?.connect() }
    }

    // MARK: - BridgeEvents (called by the extension on an XPC queue)

    func flowSeen(_ json: Data) {
        guard let flow = try? JSONDecoder().decode(FlowRecord.self, from: json) else { return }
        queue.async { self.retryDelay = 1; self.onFlow(flow) }
    }

    func flowDecided(_ json: Data) {
        guard let verdict = try? JSONDecoder().decode(VerdictMessage.self, from: json) else { return }
        queue.async { self.onVerdict(verdict) }
    }

    func ruleLearned(_ json: Data, flowID: String) {
        guard let rule = try? JSONDecoder().decode(IdentityRule.self, from: json) else { return }
        queue.async { self.onRule(rule, flowID) }
    }
}
