// An NEFilterSocketFlow as a protocol v1 FlowRecord: endpoints, direction, protocol, the OS's host
// name, and both audit tokens as raw 32 bytes in base64. PID and UID are copied from the token as
// hints only; flowtop identifies processes by the token. NOT YET BUILT OR RUN ON A MAC.
import Foundation
import FlowtopShared
import NetworkExtension

enum FlowFacts {
    static let auditTokenBytes = 32

    /// The token of the process that opened the flow: sourceProcessAuditToken (macOS 13+) names the
    /// process itself; sourceAppAuditToken names the app it acts for, which may be another process.
    static func processToken(of flow: NEFilterFlow) -> Data? {
        valid(flow.sourceProcessAuditToken) ?? valid(flow.sourceAppAuditToken)
    }

    static func record(for flow: NEFilterSocketFlow, now: Int64) -> FlowRecord {
        let family = flow.socketFamily == AF_INET6 ? "ipv6" : "ipv4"
        let proto: String
        switch flow.socketProtocol {
        case IPPROTO_TCP: proto = "tcp"
        case IPPROTO_UDP: proto = "udp"
        case IPPROTO_ICMP, IPPROTO_ICMPV6: proto = "icmp"
        default: proto = "other"
        }
        // WebKit's flows can arrive without a local endpoint: report the unspecified address.
        let unspecified = Endpoint(address: family == "ipv6" ? "::" : "0.0.0.0", port: 0)
        var record = FlowRecord(
            id: flow.identifier.uuidString,
            time: now,
            direction: flow.direction == .inbound ? "inbound" : "outbound",
            protocol: proto,
            family: family,
            local: endpoint(flow.localEndpoint) ?? unspecified,
            remote: endpoint(flow.remoteEndpoint) ?? unspecified
        )
        if let name = flow.remoteHostname, !name.isEmpty, name.utf8.count <= 253 {
            record.remoteHost = RemoteHost(name: name)
        }
        let app = valid(flow.sourceAppAuditToken)
        let process = processToken(of: flow)
        if let process {
            record.token = process.base64EncodedString()
            record.pid = Int(word(process, 5))
            record.uid = Int(word(process, 1))
        } else {
            record.ownerError = "the system gave no audit token for this flow"
        }
        if let app, app != process { record.appToken = app.base64EncodedString() }
        return record
    }

    private static func valid(_ token: Data?) -> Data? {
        guard let token, token.count == auditTokenBytes else { return nil }
        return token
    }

    /// audit_token_t is eight little-endian uint32: auid, euid, egid, ruid, rgid, pid, asid, pidversion.
    private static func word(_ token: Data, _ index: Int) -> UInt32 {
        let start = token.startIndex + index * 4
        return token[start..<start + 4].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    private static func endpoint(_ endpoint: NWEndpoint?) -> Endpoint? {
        // NWHostEndpoint is deprecated from macOS 15 in favour of Network.framework's endpoint, but it
        // is what macOS 13 and 14 deliver; both still arrive as NWHostEndpoint here.
        guard let host = endpoint as? NWHostEndpoint, !host.hostname.isEmpty else { return nil }
        return Endpoint(address: host.hostname, port: Int(host.port) ?? 0)
    }
}
