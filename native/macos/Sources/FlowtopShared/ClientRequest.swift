// Validation of the client messages the bridge accepts (protocol v1). Every failure becomes an
// error code and words; nothing here throws or trusts its input. NOT YET BUILT ON A MAC.
import Foundation

public enum Remember: String {
    case once, process, always
}

/// A rule-add this extension can keep: one program, by designated requirement, for good.
public struct RuleAddition: Equatable {
    public var requirement: String
    public var allow: Bool
    public var label: String?
    public var note: String?

    public init(requirement: String, allow: Bool, label: String? = nil, note: String? = nil) {
        self.requirement = requirement
        self.allow = allow
        self.label = label
        self.note = note
    }
}

public enum ClientRequest: Equatable {
    case subscribe(protocolVersion: Int, clientName: String, clientVersion: String, ref: String?)
    case verdict(id: String, allow: Bool, remember: Remember, ref: String?)
    case ruleAdd(RuleAddition, ref: String?)
    case ruleRemove(id: String, ref: String?)
    case rulesList(ref: String?)
    /// A valid message this extension does not support (a rule other than "this program, always",
    /// or a verdict whose rule would cover one endpoint only); `reason` says so in words.
    case unsupported(reason: String, ref: String?)
}

public struct RequestError: Error, Equatable {
    public var code: String
    public var message: String
    public var ref: String?

    // Written out: a memberwise initializer is never more than internal, and the bridge builds these.
    public init(code: String, message: String, ref: String? = nil) {
        self.code = code
        self.message = message
        self.ref = ref
    }
}

public func decodeClientRequest(_ line: Data) -> Result<ClientRequest, RequestError> {
    guard let object = try? JSONSerialization.jsonObject(with: line, options: []) else {
        return .failure(RequestError(code: "bad-json", message: "the line is not JSON"))
    }
    guard let message = object as? [String: Any] else {
        return .failure(RequestError(code: "bad-message", message: "a message must be a JSON object"))
    }
    var ref: String?
    if let value = present(message["ref"]) {
        guard let text = value as? String, fits(text, 128) else {
            return .failure(RequestError(code: "bad-message", message: "ref must be a string of 1 to 128 characters"))
        }
        ref = text
    }
    guard let type = message["type"] as? String else {
        return .failure(RequestError(code: "bad-message", message: "type must be a string", ref: ref))
    }
    func bad(_ words: String) -> Result<ClientRequest, RequestError> {
        .failure(RequestError(code: "bad-message", message: "\(type): \(words)", ref: ref))
    }
    switch type {
    case "subscribe":
        guard let version = integer(message["protocol"]), version >= 1, version <= Int(UInt32.max) else {
            return bad("protocol must be an integer of at least 1")
        }
        guard let client = message["client"] as? [String: Any],
              let name = client["name"] as? String, fits(name, 255),
              let clientVersion = client["version"] as? String, fits(clientVersion, 255)
        else { return bad("client must be {name, version} strings") }
        return .success(.subscribe(protocolVersion: version, clientName: name, clientVersion: clientVersion, ref: ref))
    case "verdict":
        guard let id = message["id"] as? String, fits(id, 128) else { return bad("id must be a string of 1 to 128 characters") }
        guard let action = message["action"] as? String, action == "allow" || action == "block" else {
            return bad("action must be \"allow\" or \"block\"")
        }
        guard let rememberText = message["remember"] as? String, let remember = Remember(rawValue: rememberText) else {
            return bad("remember must be \"once\", \"process\" or \"always\"")
        }
        if let scopeValue = present(message["scope"]) {
            guard let scope = scopeValue as? String, verdictScopes.contains(scope) else {
                return bad("scope must be \"process\", \"endpoint\", \"host\", \"domain\" or \"port\"")
            }
            guard remember != .once else { return bad("scope must be absent with remember \"once\"") }
            if scope != "process" {
                return .success(.unsupported(reason: "rules here cover a whole program; \"scope\": \"\(scope)\" is not supported", ref: ref))
            }
        }
        // Valid only with the verdict-durations capability, which this extension does not announce:
        // refused rather than ignored, which would keep for good a rule meant to expire.
        for field in ["forMs", "session"] where present(message[field]) != nil {
            guard remember == .always else { return bad("\(field) is only allowed with remember \"always\"") }
            return .success(.unsupported(reason: "rules here last until removed; \"\(field)\" is not supported", ref: ref))
        }
        return .success(.verdict(id: id, allow: action == "allow", remember: remember, ref: ref))
    case "rule-add":
        guard let rule = message["rule"] as? [String: Any] else { return bad("rule must be an object") }
        guard let request = ruleAddition(rule, ref: ref) else { return bad(ruleProblem(rule)) }
        return .success(request)
    case "rule-remove":
        guard let id = message["id"] as? String, fits(id, 128) else { return bad("id must be a string of 1 to 128 characters") }
        return .success(.ruleRemove(id: id, ref: ref))
    case "rules-list":
        return .success(.rulesList(ref: ref))
    default:
        return .failure(RequestError(code: "unknown-type", message: "unknown message type \"\(type)\"", ref: ref))
    }
}

private let verdictScopes: Set<String> = ["process", "endpoint", "host", "domain", "port"]
private let actions: Set<String> = ["allow", "block"]
private let durations: Set<String> = ["once", "process", "until", "always"]
private let identityKinds: Set<String> = ["sha256", "package", "path", "requirement"]

/// What is malformed in a rule spec, in words naming the field (protocol v1, "The rule object").
/// Only called when ruleAddition found the spec invalid.
private func ruleProblem(_ rule: [String: Any]) -> String {
    guard let action = rule["action"] as? String, actions.contains(action) else { return "rule.action must be \"allow\" or \"block\"" }
    guard let duration = rule["duration"] as? [String: Any], let kind = duration["kind"] as? String, durations.contains(kind) else {
        return "rule.duration.kind must be one of \"once\", \"process\", \"until\", \"always\""
    }
    if let identity = present(rule["identity"]) {
        guard let fields = identity as? [String: Any], let kind = fields["kind"] as? String, identityKinds.contains(kind),
              let value = fields["value"] as? String, fits(value, 4096)
        else { return "rule.identity must be {kind, value} with kind \"sha256\", \"package\", \"path\" or \"requirement\"" }
        if let label = present(fields["label"]), !((label as? String).map { fits($0, 255) } ?? false) { return "rule.identity.label must be a string of 1 to 255 characters" }
    }
    if let blockMode = present(rule["blockMode"]), !((blockMode as? String).map { $0 == "drop" || $0 == "reject" } ?? false) {
        return "rule.blockMode must be \"drop\" or \"reject\""
    }
    if let enabled = present(rule["enabled"]), !isBool(enabled) { return "rule.enabled must be true or false" }
    if let note = present(rule["note"]), !((note as? String).map { $0.utf16.count <= 4096 } ?? false) { return "rule.note must be a string of at most 4096 characters" }
    return "rule is not valid"
}

/// A valid spec as `.ruleAdd`, or `.unsupported` naming what this extension cannot keep; nil when the
/// spec is malformed (ruleProblem says how).
private func ruleAddition(_ rule: [String: Any], ref: String?) -> ClientRequest? {
    guard let action = rule["action"] as? String, actions.contains(action),
          let duration = rule["duration"] as? [String: Any], let durationKind = duration["kind"] as? String, durations.contains(durationKind)
    else { return nil }
    var requirement: String?
    var identityKind: String?
    var label: String?
    if let identity = present(rule["identity"]) {
        guard let fields = identity as? [String: Any], let kind = fields["kind"] as? String, identityKinds.contains(kind),
              let value = fields["value"] as? String, fits(value, 4096)
        else { return nil }
        if let rawLabel = present(fields["label"]) {
            guard let text = rawLabel as? String, fits(text, 255) else { return nil }
            label = text
        }
        identityKind = kind
        requirement = value
    }
    var blockMode: String?
    if let value = present(rule["blockMode"]) {
        guard let mode = value as? String, mode == "drop" || mode == "reject" else { return nil }
        blockMode = mode
    }
    var enabled = true
    if let value = present(rule["enabled"]) {
        guard isBool(value), let flag = value as? NSNumber else { return nil }
        enabled = flag.boolValue
    }
    var note: String?
    if let value = present(rule["note"]) {
        guard let text = value as? String, text.utf16.count <= 4096 else { return nil }
        note = text.isEmpty ? nil : text
    }
    // Valid. Now what the filter can enforce: it matches a program's designated requirement and
    // nothing else, keeps rules until removed, and blocks by dropping.
    func unsupported(_ words: String) -> ClientRequest { .unsupported(reason: "rules here cover one program, always: \(words)", ref: ref) }
    guard identityKind == "requirement", let requirement else {
        return unsupported("identity must be {\"kind\": \"requirement\"} (a designated requirement)")
    }
    guard durationKind == "always" else { return unsupported("duration \"\(durationKind)\" is not supported (use a verdict's remember for this process)") }
    for field in ["endpoint", "protocol", "direction"] where present(rule[field]) != nil {
        return unsupported("\"\(field)\" is not supported")
    }
    if blockMode == "reject" { return unsupported("blocked flows are dropped; blockMode \"reject\" is not supported") }
    guard enabled else { return unsupported("disabled rules are not kept") }
    return .ruleAdd(RuleAddition(requirement: requirement, allow: action == "allow", label: label, note: note), ref: ref)
}

/// A JSON true / false (not a number that happens to be 0 or 1).
private func isBool(_ value: Any) -> Bool {
    guard let number = value as? NSNumber else { return false }
    return isBoolean(number)
}

/// An optional field may be omitted or null; both mean absent.
private func present(_ value: Any?) -> Any? {
    value is NSNull ? nil : value
}

/// string(n) of the protocol: 1 to n UTF-16 code units.
private func fits(_ text: String, _ limit: Int) -> Bool {
    !text.isEmpty && text.utf16.count <= limit
}

/// JSON numbers arrive as NSNumber; booleans are NSNumbers too and must not pass as integers.
private func integer(_ value: Any?) -> Int? {
    guard let number = value as? NSNumber, !isBoolean(number) else { return nil }
    let double = number.doubleValue
    guard double.rounded() == double, abs(double) < 1e15 else { return nil }
    return number.intValue
}

/// Whether JSONSerialization made this NSNumber from `true` / `false`. Apple's Foundation gives
/// booleans their own CF type; swift-corelibs-foundation (Linux) has no public CFGetTypeID, but keeps
/// a boolean's Objective-C type code "c" (char), which it never uses for a parsed JSON number.
private func isBoolean(_ number: NSNumber) -> Bool {
    #if canImport(Darwin)
    return CFGetTypeID(number) == CFBooleanGetTypeID()
    #else
    return String(cString: number.objCType) == "c"
    #endif
}
