// The filter's small rule cache, consulted in handleNewFlow before a flow is paused:
//  - process verdicts ("remember: process"), keyed by the audit token — a token names one process
//    instance and is never reused, so such an answer can never leak to a later process;
//  - identity rules ("remember: always"), keyed by the designated requirement text.
// Unknown never matches: a flow whose identity could not be read securely matches no identity rule.
// NOT YET BUILT ON A MAC.
import Foundation

public struct IdentityRule: Codable, Equatable {
    public var id: String
    /// The designated requirement text of the code (SecRequirementCopyString).
    public var identity: String
    public var action: String // "allow" | "block"
    public var created: Int64
    /// From a client's rule-add: shown to people, never matched (absent in rules.json written before).
    public var label: String?
    public var note: String?

    public init(id: String, identity: String, action: String, created: Int64, label: String? = nil, note: String? = nil) {
        self.id = id
        self.identity = identity
        self.action = action
        self.created = created
        self.label = label
        self.note = note
    }
}

public struct CachedVerdict: Equatable {
    public var allow: Bool
    public var ruleId: String?

    // Written out: a memberwise initializer is never more than internal (the tests build these).
    public init(allow: Bool, ruleId: String? = nil) {
        self.allow = allow
        self.ruleId = ruleId
    }
}

public struct RuleCache {
    private var byToken: [Data: Bool] = [:]
    /// Insertion order of byToken, for a size bound without a clock.
    private var tokenOrder: [Data] = []
    private var byIdentity: [String: IdentityRule] = [:]
    public let maxProcessVerdicts: Int

    public init(maxProcessVerdicts: Int = 4096) { self.maxProcessVerdicts = maxProcessVerdicts }

    public var hasIdentityRules: Bool { !byIdentity.isEmpty }
    public var identityRules: [IdentityRule] { byIdentity.values.sorted { $0.created < $1.created } }

    /// `identity` is only called when there are identity rules (it costs Security.framework calls).
    public func verdict(token: Data?, identity: () -> String?) -> CachedVerdict? {
        if let token, let allow = byToken[token] { return CachedVerdict(allow: allow, ruleId: nil) }
        guard hasIdentityRules, let key = identity(), let rule = byIdentity[key] else { return nil }
        return CachedVerdict(allow: rule.action == "allow", ruleId: rule.id)
    }

    public mutating func rememberProcess(token: Data, allow: Bool) {
        if byToken.updateValue(allow, forKey: token) == nil { tokenOrder.append(token) }
        while tokenOrder.count > maxProcessVerdicts {
            byToken.removeValue(forKey: tokenOrder.removeFirst())
        }
    }

    public mutating func add(_ rule: IdentityRule) {
        byIdentity[rule.identity] = rule
    }

    public mutating func replaceIdentityRules(_ rules: [IdentityRule]) {
        byIdentity = Dictionary(rules.map { ($0.identity, $0) }, uniquingKeysWith: { _, newer in newer })
    }
}
