// Protocol v1 (src/protocol/messages.ts is the source of truth; docs/protocol.md the normative text):
// the subset the macOS filter and bridge speak. Encoding leaves out absent optionals, as the
// TypeScript side expects. NOT YET BUILT ON A MAC.
import Foundation

public enum ProtocolV1 {
    public static let version = 1
    /// Longest accepted line in bytes, newline excluded.
    public static let maxLineBytes = 64 * 1024
}

public struct Endpoint: Codable, Equatable {
    public var address: String
    public var port: Int
    public init(address: String, port: Int) { self.address = address; self.port = port }
}

public struct RemoteHost: Codable, Equatable {
    public var name: String
    /// "extension": the name came from the OS (NEFilterSocketFlow.remoteHostname).
    public var source: String
    public init(name: String, source: String = "extension") { self.name = name; self.source = source }
}

public struct Verdict: Codable, Equatable {
    public var action: String // "allow" | "block"
    public var by: String // "rule" | "user" | "default"
    public var ruleId: String?
    public init(action: String, by: String, ruleId: String? = nil) { self.action = action; self.by = by; self.ruleId = ruleId }
}

public struct PendingInfo: Codable, Equatable {
    /// Milliseconds since the Unix epoch.
    public var deadline: Int64
    public init(deadline: Int64) { self.deadline = deadline }
}

public struct FlowRecord: Codable, Equatable {
    public var id: String
    public var time: Int64
    public var direction: String // "outbound" | "inbound"
    public var `protocol`: String // "tcp" | "udp" | "icmp" | "other"
    public var family: String // "ipv4" | "ipv6"
    public var local: Endpoint
    public var remote: Endpoint
    public var remoteHost: RemoteHost?
    /// base64 of the 32-byte audit token of the process that opened the flow
    /// (sourceProcessAuditToken on macOS 13+, else sourceAppAuditToken).
    public var token: String?
    /// base64 of sourceAppAuditToken when it differs from `token` (the app a helper acts for).
    public var appToken: String?
    public var pid: Int?
    public var uid: Int?
    public var ownerError: String?
    public var pending: PendingInfo?
    public var verdict: Verdict?

    public init(id: String, time: Int64, direction: String, protocol proto: String, family: String, local: Endpoint, remote: Endpoint) {
        self.id = id
        self.time = time
        self.direction = direction
        self.protocol = proto
        self.family = family
        self.local = local
        self.remote = remote
    }
}

public struct HelloMessage: Codable, Equatable {
    public struct Product: Codable, Equatable { public var name: String; public var version: String }
    public struct Mode: Codable, Equatable {
        public var failOpen: Bool
        public var attribution: String
        public var defaultAction: String
        public var timeoutMs: Int
    }
    public var type = "hello"
    public var `protocol` = ProtocolV1.version
    public var `extension`: Product
    public var platform = "darwin"
    public var host: String
    public var capabilities: [String]
    public var tokenKind = "darwin-audit-token"
    public var mode: Mode

    public init(version: String, host: String, defaultAction: String, timeoutMs: Int) {
        self.extension = Product(name: "flowtop-macos", version: version)
        self.host = host
        // "rules": identity rules (designated requirement, always) can be listed, added and removed.
        self.capabilities = ["verdicts", "rules", "host-names"]
        self.mode = Mode(failOpen: true, attribution: "audit tokens from NEFilterFlow", defaultAction: defaultAction, timeoutMs: timeoutMs)
    }
}

public struct FlowMessage: Codable, Equatable {
    public var type = "flow"
    public var flow: FlowRecord
    public init(flow: FlowRecord) { self.flow = flow }
}

public struct VerdictMessage: Codable, Equatable {
    public var type = "verdict"
    public var id: String
    public var time: Int64
    public var verdict: Verdict
    public init(id: String, time: Int64, verdict: Verdict) { self.id = id; self.time = time; self.verdict = verdict }
}

public struct ErrorMessage: Codable, Equatable {
    public var type = "error"
    public var code: String
    public var message: String
    public var ref: String?
    public init(code: String, message: String, ref: String? = nil) { self.code = code; self.message = message; self.ref = ref }
}

/// One message as one NDJSON line, newline included; nil when it would exceed the line limit
/// (a receiver drops such a line, so sending it would be a bug).
public func encodeLine<T: Encodable>(_ message: T, limit: Int = ProtocolV1.maxLineBytes) -> Data? {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.withoutEscapingSlashes]
    guard var data = try? encoder.encode(message), data.count <= limit else { return nil }
    data.append(0x0A)
    return data
}

public func nowMillis() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded())
}
