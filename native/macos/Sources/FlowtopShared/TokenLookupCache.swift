// Results of the filter's secure lookups (audit token → designated requirement), keyed by the token
// bytes. A token names one process instance and is never reused, so a found identity, and an answer
// that can never change (the instance is gone, its code is unsigned), stay until the size bound
// pushes them out. A failure that may pass — EPERM from the extension's sandbox, as seed thread 001
// reports for /usr/libexec daemons, or any other error — is kept only briefly: long enough not to
// repeat Security calls for every flow of a busy process, short enough that it is tried again.
// NOT YET BUILT ON A MAC.
import Foundation

public enum TokenLookup<Value: Equatable>: Equatable {
    case found(Value)
    /// A lasting answer without a value: the instance exited or exec'd, or its code has no valid signature.
    case noIdentity
    /// A failure that may pass; asked again after `retryAfterMs`.
    case failed
}

public struct TokenLookupCache<Value: Equatable> {
    private struct Stored {
        let result: TokenLookup<Value>
        /// Milliseconds since the epoch after which a failure is asked again; nil for lasting answers.
        let retryAt: Int64?
    }

    private var stored: [Data: Stored] = [:]
    /// Insertion order, for the size bound without a clock.
    private var order: [Data] = []
    public let capacity: Int
    public let retryAfterMs: Int64

    public init(capacity: Int = 4096, retryAfterMs: Int64 = 2_000) {
        self.capacity = capacity
        self.retryAfterMs = retryAfterMs
    }

    public var count: Int { stored.count }

    /// The remembered answer, or nil when the token must be looked up (never asked, or a failure
    /// whose time is up).
    public func cached(_ token: Data, now: Int64) -> TokenLookup<Value>? {
        guard let entry = stored[token] else { return nil }
        if let retryAt = entry.retryAt, now >= retryAt { return nil }
        return entry.result
    }

    public mutating func store(_ token: Data, _ result: TokenLookup<Value>, now: Int64) {
        let retryAt = result == .failed ? now + retryAfterMs : nil
        if stored.updateValue(Stored(result: result, retryAt: retryAt), forKey: token) == nil { order.append(token) }
        while order.count > capacity {
            stored.removeValue(forKey: order.removeFirst())
        }
    }
}
