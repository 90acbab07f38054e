// The XPC contract between the system extension and the bridge daemon, in one place.
// The extension listens on its NEMachServiceName; the bridge (root, launchd) connects to it. Each
// side checks the other's code signature: same Team ID, expected signing identifier
// (PeerRequirement in FlowtopShared). @objc protocols need the Objective-C runtime, which is why
// this lives outside FlowtopShared. NOT YET BUILT ON A MAC.
import Foundation

/// Exported by the extension, called by the bridge. Replies are plain values: no collections, so no
/// NSXPCInterface class allow-lists are needed.
@objc public protocol FilterControl {
    /// How many protocol clients are subscribed. 0 resumes every paused flow with the default action.
    func setSubscriberCount(_ count: Int)
    /// A client's verdict for a paused flow. reply(code, message): code "" = applied, else a protocol
    /// ErrorCode ("unknown-flow", "not-supported", …) and words for the client.
    func decide(flowID: String, allow: Bool, remember: String, reply: @escaping (String, String) -> Void)
    /// Identity rules the bridge keeps on disk (JSON array of IdentityRule), sent after each connect
    /// and after every rule-add / rule-remove; they replace the extension's identity rules.
    func loadRules(_ json: Data, reply: @escaping (Int) -> Void)
    /// The flows paused right now, as a JSON array of FlowRecord (the snapshot for a new subscriber).
    func pendingFlows(reply: @escaping (Data) -> Void)
}

/// Exported by the bridge, called by the extension.
@objc public protocol BridgeEvents {
    /// A FlowRecord, JSON.
    func flowSeen(_ json: Data)
    /// A VerdictMessage, JSON (a paused flow was resumed: by a client, a rule, or its deadline).
    func flowDecided(_ json: Data)
    /// An IdentityRule, JSON, learned from a "remember: always" verdict for `flowID`; the bridge
    /// stores it and tells clients, with the ref of the verdict that made it.
    func ruleLearned(_ json: Data, flowID: String)
}
