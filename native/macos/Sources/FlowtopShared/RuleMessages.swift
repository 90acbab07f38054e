// Identity rules as protocol v1 rule objects, and the `rules` / `rule-changed` messages that carry
// them (docs/protocol.md §5). The macOS filter keeps one kind of rule: "this program" by designated
// requirement, for good (duration always), allow or block; its wire form says exactly that.
// NOT YET BUILT ON A MAC.
import Foundation

public struct RuleIdentityField: Codable, Equatable {
    public var kind: String // "requirement" here
    public var value: String
    public var label: String?

    public init(kind: String, value: String, label: String? = nil) {
        self.kind = kind
        self.value = value
        self.label = label
    }
}

public struct RuleDurationField: Codable, Equatable {
    public var kind: String // "always" here
    public init(kind: String) { self.kind = kind }
}

public struct ProtocolRule: Codable, Equatable {
    public var id: String
    public var created: Int64
    /// Flows decided by the rule. The extension applies rules without telling the bridge which one
    /// matched a flow it did not pause, so this is not counted: always 0.
    public var hits: Int
    public var enabled: Bool
    public var action: String
    public var identity: RuleIdentityField
    public var duration: RuleDurationField
    public var note: String?

    public init(_ rule: IdentityRule) {
        id = rule.id
        created = rule.created
        hits = 0
        enabled = true
        action = rule.action
        identity = RuleIdentityField(kind: "requirement", value: rule.identity, label: rule.label)
        duration = RuleDurationField(kind: "always")
        note = rule.note
    }
}

public struct RulesMessage: Codable, Equatable {
    public var type = "rules"
    public var rules: [ProtocolRule]
    /// true: more `rules` messages follow to complete this list.
    public var continues: Bool?
    /// The `ref` of the rules-list answered.
    public var ref: String?

    public init(rules: [ProtocolRule], continues: Bool? = nil, ref: String? = nil) {
        self.rules = rules
        self.continues = continues
        self.ref = ref
    }
}

public struct RuleChangedMessage: Codable, Equatable {
    public var type = "rule-changed"
    public var op: String // "added" | "updated" | "removed"
    public var rule: ProtocolRule
    public var ref: String?

    public init(op: String, rule: ProtocolRule, ref: String? = nil) {
        self.op = op
        self.rule = rule
        self.ref = ref
    }
}

/// The rule list as `rules` lines, each within the line limit: all but the last say `continues`,
/// every one carries `ref`. An empty list is one message with no rules. `limit` is for tests.
public func encodeRuleList(_ rules: [ProtocolRule], ref: String?, limit: Int = ProtocolV1.maxLineBytes) -> [Data] {
    var lines: [Data] = []
    var chunk: [ProtocolRule] = []
    func fits(_ candidate: [ProtocolRule]) -> Bool {
        // Measured with `continues`, the longer form, so a chunk never outgrows the limit later.
        encodeLine(RulesMessage(rules: candidate, continues: true, ref: ref), limit: limit) != nil
    }
    for rule in rules {
        if fits(chunk + [rule]) {
            chunk.append(rule)
        } else if chunk.isEmpty {
            continue // one rule longer than a line cannot be sent (cannot happen: fields are bounded)
        } else {
            if let line = encodeLine(RulesMessage(rules: chunk, continues: true, ref: ref), limit: limit) { lines.append(line) }
            chunk = fits([rule]) ? [rule] : []
        }
    }
    if let last = encodeLine(RulesMessage(rules: chunk, ref: ref), limit: limit) { lines.append(last) }
    return lines
}
