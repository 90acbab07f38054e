// What happens to a flow nobody answers. Shared so the bridge's hello tells clients the same numbers
// the filter applies. NOT YET BUILT ON A MAC.
import Foundation

public struct FilterPolicy {
    /// Fail open: with no client, or past a deadline, flows are allowed (as the Linux agent's default).
    public var defaultAllows: Bool
    /// TCP flows may stay paused indefinitely; this is how long a person gets to answer.
    public var tcpTimeoutMs: Int64
    /// The system drops a UDP flow paused for more than 10 s, so its deadline must come first.
    public var udpTimeoutMs: Int64

    public static let standard = FilterPolicy(defaultAllows: true, tcpTimeoutMs: 30_000, udpTimeoutMs: 8_000)

    public var defaultAction: String { defaultAllows ? "allow" : "block" }

    public func timeoutMs(forProtocol proto: String) -> Int64 {
        proto == "tcp" ? tcpTimeoutMs : udpTimeoutMs
    }
}
