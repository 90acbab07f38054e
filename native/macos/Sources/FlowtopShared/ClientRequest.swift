// Validation of the client messages the bridge accepts (protocol v1). Every failure becomes an
// error code and words; nothing here throws or trusts its input. NOT YET BUILT ON A MAC.
import Foundation

public enum Remember: String {
    case once, process, always
}

public enum ClientRequest: Equatable {
    case subscribe(protocolVersion: Int, clientName: String, clientVersion: String, ref: String?)
    case verdict(id: String, allow: Bool, remember: Remember, ref: String?)
    /// A valid message this extension does not support (rule-add, rule-remove, rules-list, or a
    /// verdict whose rule would cover one endpoint only); `reason` says so in words.
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
            guard let scope = scopeValue as? String, scope == "process" || scope == "endpoint" else {
                return bad("scope must be \"process\" or \"endpoint\"")
            }
            guard remember != .once else { return bad("scope must be absent with remember \"once\"") }
            if scope == "endpoint" {
                return .success(.unsupported(reason: "rules here cover a whole program; \"scope\": \"endpoint\" is not supported", ref: ref))
            }
        }
        return .success(.verdict(id: id, allow: action == "allow", remember: remember, ref: ref))
    case "rule-add", "rule-remove", "rules-list":
        return .success(.unsupported(reason: "the macOS extension keeps its own rules: \"\(type)\" is not supported", ref: ref))
    default:
        return .failure(RequestError(code: "unknown-type", message: "unknown message type \"\(type)\"", ref: ref))
    }
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
