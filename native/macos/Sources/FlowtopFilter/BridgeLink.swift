// The extension's end of the XPC link to the bridge daemon. The extension is sandboxed, so it cannot
// serve the Unix socket itself; it listens on its NEMachServiceName instead and accepts exactly one
// peer: a root process whose code signature satisfies the bridge's requirement (same Team ID,
// identifier com.flowtop.bridge).
//
// One link for the life of the extension process, listening from main.swift on (as Apple's filter
// sample starts its listener), not from startFilter: the bridge connects at once instead of retrying
// for up to 30 s. The provider attaches when its filter starts; what the bridge says before that
// (subscriber count, rules) is kept and handed over then. NOT YET BUILT OR RUN ON A MAC.
import FlowtopShared
import FlowtopXPC
import Foundation
import os.log

private let log = Logger(subsystem: FlowtopIDs.filterBundleID, category: "xpc")

final class BridgeLink: NSObject, NSXPCListenerDelegate, FilterControl {
    static let shared = BridgeLink()

    private let lock = NSLock()
    private weak var attached: FilterDataProvider?
    private var listener: NSXPCListener?
    private var connection: NSXPCConnection?
    /// The latest the bridge said, for a provider that attaches later.
    private var subscriberCount = 0
    private var identityRules: [IdentityRule]?

    private override init() {
        super.init()
    }

    private var provider: FilterDataProvider? {
        lock.lock()
        defer { lock.unlock() }
        return attached
    }

    /// The filter started: it gets what the bridge said so far.
    func attach(_ provider: FilterDataProvider) {
        lock.lock()
        attached = provider
        let (count, rules) = (subscriberCount, identityRules)
        lock.unlock()
        if let rules { _ = provider.loadRules(rules) }
        provider.setSubscriberCount(count)
    }

    /// The filter stopped; the listener stays for the next start.
    func detach(_ provider: FilterDataProvider) {
        lock.lock()
        if attached === provider { attached = nil }
        lock.unlock()
    }

    var isConnected: Bool {
        lock.lock()
        defer { lock.unlock() }
        return connection != nil
    }

    func start() {
        guard let teamID = SelfSignature.teamID(),
              let requirement = PeerRequirement.forIdentifier(FlowtopIDs.bridgeIdentifier, teamID: teamID)
        else {
            log.error("this extension has no Team ID in its signature: refusing every XPC peer (flows get the default action)")
            return
        }
        let settings = Bundle.main.object(forInfoDictionaryKey: "NetworkExtension") as? [String: Any]
        guard let machName = settings?["NEMachServiceName"] as? String else {
            log.error("Info.plist has no NetworkExtension.NEMachServiceName: no bridge can connect")
            return
        }
        let listener = NSXPCListener(machServiceName: machName)
        // macOS 13+: the system checks every peer against the requirement before we see its messages.
        listener.setConnectionCodeSigningRequirement(requirement)
        listener.delegate = self
        lock.lock()
        self.listener = listener
        lock.unlock()
        listener.resume()
        log.info("listening on \(machName, privacy: .public) for \(requirement, privacy: .public)")
    }

    func listener(_ listener: NSXPCListener, shouldAcceptNewConnection newConnection: NSXPCConnection) -> Bool {
        // The bridge runs as root from a launchd plist; anything else is not the bridge, whatever it is signed as.
        guard newConnection.effectiveUserIdentifier == 0 else {
            log.error("refusing XPC peer pid \(newConnection.processIdentifier, privacy: .public): not root")
            return false
        }
        newConnection.exportedInterface = NSXPCInterface(with: FilterControl.self)
        newConnection.exportedObject = self
        newConnection.remoteObjectInterface = NSXPCInterface(with: BridgeEvents.self)
        newConnection.invalidationHandler = { [weak self, weak newConnection] in self?.lost(newConnection) }
        newConnection.interruptionHandler = { [weak self, weak newConnection] in self?.lost(newConnection) }
        lock.lock()
        let previous = connection
        connection = newConnection
        lock.unlock()
        // One bridge at a time: a restarted bridge replaces the old link.
        previous?.invalidate()
        newConnection.resume()
        log.info("bridge connected (pid \(newConnection.processIdentifier, privacy: .public))")
        return true
    }

    private func lost(_ lostConnection: NSXPCConnection?) {
        lock.lock()
        let wasCurrent = lostConnection != nil && connection === lostConnection
        if wasCurrent { connection = nil }
        lock.unlock()
        guard wasCurrent else { return }
        log.info("bridge went away: resuming paused flows with the default")
        lock.lock()
        subscriberCount = 0
        lock.unlock()
        provider?.bridgeDisconnected()
    }

    // MARK: - Events to the bridge

    func publish(flow: FlowRecord) {
        guard let data = try? JSONEncoder().encode(flow) else { return }
        bridge()?.flowSeen(data)
    }

    func publish(verdict: VerdictMessage) {
        guard let data = try? JSONEncoder().encode(verdict) else { return }
        bridge()?.flowDecided(data)
    }

    func publish(rule: IdentityRule, learnedFrom flowID: String) {
        guard let data = try? JSONEncoder().encode(rule) else { return }
        bridge()?.ruleLearned(data, flowID: flowID)
    }

    private func bridge() -> BridgeEvents? {
        lock.lock()
        let current = connection
        lock.unlock()
        return current?.remoteObjectProxyWithErrorHandler { error in
            log.error("sending to the bridge failed: \(error.localizedDescription, privacy: .public)")
        } as? BridgeEvents
    }

    // MARK: - FilterControl (called by the bridge, on an XPC queue)

    func setSubscriberCount(_ count: Int) {
        lock.lock()
        subscriberCount = max(0, count)
        let provider = attached
        lock.unlock()
        provider?.setSubscriberCount(count)
    }

    func decide(flowID: String, allow: Bool, remember: String, reply: @escaping (String, String) -> Void) {
        guard let provider else { return reply("internal", "the filter is not running") }
        guard let mode = Remember(rawValue: remember) else { return reply("bad-message", "remember must be once, process or always") }
        let result = provider.decide(flowID: flowID, allow: allow, remember: mode)
        reply(result.code, result.message)
    }

    func loadRules(_ json: Data, reply: @escaping (Int) -> Void) {
        guard let rules = try? JSONDecoder().decode([IdentityRule].self, from: json) else {
            log.error("the bridge sent rules that do not decode; keeping the current ones")
            return reply(-1)
        }
        lock.lock()
        identityRules = rules
        let provider = attached
        lock.unlock()
        reply(provider?.loadRules(rules) ?? rules.count)
    }

    func pendingFlows(reply: @escaping (Data) -> Void) {
        let flows = provider?.pendingSnapshot() ?? []
        reply((try? JSONEncoder().encode(flows)) ?? Data("[]".utf8))
    }
}
