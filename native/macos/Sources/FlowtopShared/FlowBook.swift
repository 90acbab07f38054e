// The bridge's record of the flows it has relayed: the snapshot a new subscriber gets (protocol v1,
// "Session" step 4: every tracked flow, pending ones with `pending`, decided ones with `verdict`,
// each once). Bounded: the oldest decided flows make room; pending flows are never dropped (the
// filter holds at most as many as it paused). NOT YET BUILT ON A MAC.
import Foundation

public struct FlowBook {
    private var flows: [String: FlowRecord] = [:]
    private var order: [String] = []
    public let capacity: Int

    public init(capacity: Int = 4096) { self.capacity = capacity }

    public var count: Int { flows.count }

    public func flow(_ id: String) -> FlowRecord? { flows[id] }

    /// In the order the flows were first seen.
    public var snapshot: [FlowRecord] { order.compactMap { flows[$0] } }

    public var pendingIDs: [String] { order.filter { flows[$0]?.pending != nil } }

    /// A new flow, or a new state of a known one (it replaces the earlier record).
    public mutating func record(_ flow: FlowRecord) {
        if flows.updateValue(flow, forKey: flow.id) == nil { order.append(flow.id) }
        evict()
    }

    /// Marks a flow decided; returns the updated record, or nil for a flow this book does not know.
    @discardableResult
    public mutating func apply(_ message: VerdictMessage) -> FlowRecord? {
        guard var flow = flows[message.id] else { return nil }
        flow.pending = nil
        flow.verdict = message.verdict
        flows[message.id] = flow
        return flow
    }

    private mutating func evict() {
        guard flows.count > capacity else { return }
        var excess = flows.count - capacity
        var kept: [String] = []
        kept.reserveCapacity(order.count)
        for id in order {
            if excess > 0, let flow = flows[id], flow.pending == nil {
                flows.removeValue(forKey: id)
                excess -= 1
            } else {
                kept.append(id)
            }
        }
        order = kept
    }
}
