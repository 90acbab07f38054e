// NOT YET RUN: `swift test` needs a Mac (or a Swift toolchain) that this repository's CI lacks.
import FlowtopShared
import XCTest

final class FlowBookTests: XCTestCase {
    private func flow(_ id: String, pending: Bool) -> FlowRecord {
        var f = FlowRecord(id: id, time: 1, direction: "outbound", protocol: "tcp", family: "ipv4",
                           local: Endpoint(address: "10.0.0.2", port: 50000), remote: Endpoint(address: "192.0.2.1", port: 443))
        if pending { f.pending = PendingInfo(deadline: 30_001) } else { f.verdict = Verdict(action: "allow", by: "default") }
        return f
    }

    func testSnapshotHasEachFlowOnceInItsLatestState() {
        var book = FlowBook()
        book.record(flow("a", pending: true))
        book.record(flow("b", pending: false))
        book.record(flow("a", pending: true)) // a new state of a known flow replaces it
        XCTAssertEqual(book.snapshot.map(\.id), ["a", "b"])
        let decided = book.apply(VerdictMessage(id: "a", time: 2, verdict: Verdict(action: "block", by: "user")))
        XCTAssertNil(decided?.pending, "a flow is never pending and decided at once")
        XCTAssertEqual(book.flow("a")?.verdict?.action, "block")
        XCTAssertNil(book.apply(VerdictMessage(id: "zzz", time: 2, verdict: Verdict(action: "block", by: "user"))))
        XCTAssertEqual(book.pendingIDs, [])
    }

    func testOldestDecidedFlowsMakeRoomButPendingOnesStay() {
        var book = FlowBook(capacity: 2)
        book.record(flow("p", pending: true))
        book.record(flow("d1", pending: false))
        book.record(flow("d2", pending: false))
        XCTAssertEqual(book.snapshot.map(\.id), ["p", "d2"])
        book.record(flow("p2", pending: true))
        book.record(flow("p3", pending: true))
        XCTAssertEqual(book.snapshot.map(\.id), ["p", "p2", "p3"], "pending flows are never dropped")
    }
}
