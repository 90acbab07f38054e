// Flows held with a pause verdict until a decision, each with its own deadline. Pure bookkeeping:
// the filter owns the NEFilterFlow objects and turns what this hands out into resumeFlow(_:with:).
//
// A flow is resumable only once its pause has been handed back to the system. Apple: "It is invalid
// to resume a flow that is not paused", and the filter publishes a flow (and stores it here) before
// handleNewFlow returns .pause(), so a verdict, a sibling's "remember: process", the sweeper or the
// last client leaving could otherwise reach it first. Such a decision is kept as `owed` and handed
// out by markPaused(_:), which the filter calls after the pause verdict has been returned.
//
// Every flow leaves this table exactly once. NOT YET BUILT ON A MAC.
import Foundation

/// How a paused flow is to be resumed: allow or block, and who decided (protocol v1 verdict `by`).
public struct Resumption: Equatable {
    public var allow: Bool
    public var by: String // "rule" | "user" | "default"
    public var ruleId: String?

    public init(allow: Bool, by: String, ruleId: String? = nil) {
        self.allow = allow
        self.by = by
        self.ruleId = ruleId
    }
}

public struct PendingFlows<Flow> {
    public struct Entry {
        public let id: String
        public let flow: Flow
        public let deadline: Int64
        /// The audit token of the process, so one "remember for this process" answers its other flows.
        public let token: Data?
    }

    /// What a decision for one flow found.
    public enum Claim {
        /// Paused: resume it now.
        case resumeNow(Entry)
        /// Its pause has not been returned yet: the decision is kept and markPaused hands it out.
        case resumeWhenPaused
        /// Not held (never paused, already decided, or timed out).
        case notPending
    }

    private struct Slot {
        let entry: Entry
        var paused = false
        var owed: Resumption?
    }

    private var slots: [String: Slot] = [:]

    public init() {}

    /// Flows still waiting for a decision (a flow whose decision is owed is no longer waiting).
    public var count: Int { slots.values.filter { $0.owed == nil }.count }
    public var isEmpty: Bool { count == 0 }
    public func contains(_ id: String) -> Bool { slots[id].map { $0.owed == nil } ?? false }
    public var ids: [String] { slots.filter { $0.value.owed == nil }.map { $0.key } }
    public var all: [Entry] { waiting.sorted { $0.deadline < $1.deadline } }
    public func peek(_ id: String) -> Entry? { contains(id) ? slots[id]?.entry : nil }

    /// The earliest deadline, for scheduling the next sweep.
    public var nextDeadline: Int64? { waiting.map(\.deadline).min() }

    private var waiting: [Entry] { slots.values.filter { $0.owed == nil }.map(\.entry) }

    /// Holds a flow whose pause verdict is about to be returned; it is not resumable until markPaused.
    public mutating func add(id: String, flow: Flow, deadline: Int64, token: Data?) {
        slots[id] = Slot(entry: Entry(id: id, flow: flow, deadline: deadline, token: token))
    }

    /// The pause has been returned to the system. Returns the flow and its decision when one was
    /// made meanwhile (resume it now), else nil (it waits, now resumable).
    public mutating func markPaused(_ id: String) -> (entry: Entry, resumption: Resumption)? {
        guard var slot = slots[id], !slot.paused else { return nil }
        if let owed = slot.owed {
            slots.removeValue(forKey: id)
            return (slot.entry, owed)
        }
        slot.paused = true
        slots[id] = slot
        return nil
    }

    /// A decision for one flow.
    public mutating func claim(_ id: String, with resumption: Resumption) -> Claim {
        guard var slot = slots[id], slot.owed == nil else { return .notPending }
        guard slot.paused else {
            slot.owed = resumption
            slots[id] = slot
            return .resumeWhenPaused
        }
        slots.removeValue(forKey: id)
        return .resumeNow(slot.entry)
    }

    /// The same decision for every waiting flow of one process instance; returns those resumable now.
    public mutating func claim(token: Data, with resumption: Resumption) -> [Entry] {
        let matching = slots.values.filter { $0.entry.token == token && $0.owed == nil }.map(\.entry.id)
        return resolve(matching, with: resumption)
    }

    /// Flows past their deadline, oldest first, with the given decision; returns those resumable now.
    public mutating func expired(now: Int64, with resumption: Resumption) -> [Entry] {
        let due = slots.values.filter { $0.entry.deadline <= now && $0.owed == nil }.map(\.entry.id)
        return resolve(due, with: resumption)
    }

    /// Everything still waiting gets the decision (the last client went away, or the filter stops).
    public mutating func claimAll(with resumption: Resumption) -> [Entry] {
        resolve(Array(slots.keys), with: resumption)
    }

    private mutating func resolve(_ ids: [String], with resumption: Resumption) -> [Entry] {
        var now: [Entry] = []
        for id in ids {
            if case let .resumeNow(entry) = claim(id, with: resumption) { now.append(entry) }
        }
        return now.sorted { $0.deadline < $1.deadline }
    }
}
