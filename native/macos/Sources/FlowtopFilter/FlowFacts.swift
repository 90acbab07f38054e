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

    /// Whether the system has told us where the flow goes. Apple: the endpoints may be nil in
    /// handleNewFlow and are filled in when data arrives.
    static func hasRemoteEndpoint(_ flow: NEFilterSocketFlow) -> Bool {
        host(flow.remoteEndpoint) != nil
    }

    static func record(for flow: NEFilterSocketFlow, now: Int64) -> FlowRecord {
        let proto: String
        switch flow.socketProtocol {
        case IPPROTO_TCP: proto = "tcp"
        case IPPROTO_UDP: proto = "udp"
        case IPPROTO_ICMP, IPPROTO_ICMPV6: proto = "icmp"
        default: proto = "other"
        }
        let remoteEnd = host(flow.remoteEndpoint)
        let localEnd = host(flow.localEndpoint)
        // The protocol requires both addresses to be literals of the flow's family. The family follows
        // the remote address (a dual-stack socket can carry IPv4), then the socket's.
        let family: String
        if let remote = remoteEnd, let kind = ipFamily(remote.address) {
            family = kind
        } else {
            family = flow.socketFamily == AF_INET6 ? "ipv6" : "ipv4"
        }
        var record = FlowRecord(
            id: flow.identifier.uuidString,
            time: now,
            direction: flow.direction == .inbound ? "inbound" : "outbound",
            protocol: proto,
            family: family,
            local: fit(localEnd, family: family),
            remote: fit(remoteEnd, family: family)
        )
        if let remote = remoteEnd, ipFamily(remote.address) == nil, remote.address.utf8.count <= 253 {
            // A name where an address belongs: keep it as the host name rather than lose it.
            record.remoteHost = RemoteHost(name: remote.address)
        }
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

    private static func host(_ endpoint: NWEndpoint?) -> Endpoint? {
        // NWHostEndpoint is deprecated from macOS 15 in favour of Network.framework's endpoint, but it
        // is what macOS 13 and 14 deliver; both still arrive as NWHostEndpoint here.
        guard let host = endpoint as? NWHostEndpoint, !host.hostname.isEmpty else { return nil }
        // Protocol v1 addresses carry no IPv6 zone ("fe80::1%en0" → "fe80::1").
        let address = host.hostname.split(separator: "%", maxSplits: 1).first.map(String.init) ?? host.hostname
        return Endpoint(address: address, port: Int(host.port) ?? 0)
    }

    /// "ipv4" / "ipv6" for an address literal, nil otherwise.
    static func ipFamily(_ address: String) -> String? {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return "ipv4" }
        if inet_pton(AF_INET6, address, &v6) == 1 { return "ipv6" }
        return nil
    }

    /// The endpoint as a literal of `family`: IPv4 is mapped into IPv6 (::ffff:a.b.c.d) and back;
    /// anything else becomes the unspecified address (WebKit flows can lack a local endpoint).
    static func fit(_ endpoint: Endpoint?, family: String) -> Endpoint {
        let unspecified = family == "ipv6" ? "::" : "0.0.0.0"
        guard let endpoint, endpoint.address.utf8.count <= 64 else { return Endpoint(address: unspecified, port: 0) }
        let port = (0...65535).contains(endpoint.port) ? endpoint.port : 0
        switch (ipFamily(endpoint.address) ?? "name", family) {
        case ("ipv4", "ipv4"), ("ipv6", "ipv6"):
            return Endpoint(address: endpoint.address, port: port)
        case ("ipv4", "ipv6"):
            return Endpoint(address: "::ffff:\(endpoint.address)", port: port)
        case ("ipv6", "ipv4"):
            let lower = endpoint.address.lowercased()
            if lower.hasPrefix("::ffff:"), ipFamily(String(lower.dropFirst(7))) == "ipv4" {
                return Endpoint(address: String(lower.dropFirst(7)), port: port)
            }
            return Endpoint(address: unspecified, port: 0)
        default:
            return Endpoint(address: unspecified, port: 0)
        }
    }
}
