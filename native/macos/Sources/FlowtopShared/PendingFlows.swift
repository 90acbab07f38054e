// Flows held with .pause() until a verdict, each with its own deadline. Pure bookkeeping: the filter
// owns the NEFilterFlow objects and turns what this returns into resumeFlow(_:with:) calls.
// Every paused flow leaves this table exactly once: by a verdict, its deadline, or takeAll().
// NOT YET BUILT ON A MAC.
import Foundation

public struct PendingFlows<Flow> {
    public struct Entry {
        public let id: String
        public let flow: Flow
        public let deadline: Int64
        /// The audit token of the process, so one "remember for this process" answers its other flows.
        public let token: Data?
    }

    private var entries: [String: Entry] = [:]

    public init() {}

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public func contains(_ id: String) -> Bool { entries[id] != nil }
    public var ids: [String] { Array(entries.keys) }
    public var all: [Entry] { entries.values.sorted { $0.deadline < $1.deadline } }
    public func peek(_ id: String) -> Entry? { entries[id] }

    /// The earliest deadline, for scheduling the next sweep.
    public var nextDeadline: Int64? { entries.values.map(\.deadline).min() }

    public mutating func add(id: String, flow: Flow, deadline: Int64, token: Data?) {
        entries[id] = Entry(id: id, flow: flow, deadline: deadline, token: token)
    }

    /// Removes and returns the flow for a verdict; nil when it is not (or no longer) pending.
    public mutating func take(_ id: String) -> Entry? {
        entries.removeValue(forKey: id)
    }

    /// Removes and returns every other pending flow of the same process instance.
    public mutating func take(token: Data) -> [Entry] {
        let matching = entries.values.filter { $0.token == token }
        for entry in matching { entries.removeValue(forKey: entry.id) }
        return matching.sorted { $0.deadline < $1.deadline }
    }

    /// Removes and returns the flows whose deadline has passed, oldest first.
    public mutating func expired(now: Int64) -> [Entry] {
        let due = entries.values.filter { $0.deadline <= now }
        for entry in due { entries.removeValue(forKey: entry.id) }
        return due.sorted { $0.deadline < $1.deadline }
    }

    /// Removes and returns everything (the last client went away, or the filter stops).
    public mutating func takeAll() -> [Entry] {
        let all = entries.values.sorted { $0.deadline < $1.deadline }
        entries.removeAll()
        return all
    }
}
