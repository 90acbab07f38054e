// NOT YET RUN: `swift test` needs a Mac (or a Swift toolchain) that this repository's CI lacks.
import FlowtopShared
import XCTest

final class PendingFlowsTests: XCTestCase {
    private let tokenA = Data(repeating: 1, count: 32)
    private let tokenB = Data(repeating: 2, count: 32)

    func testEachFlowLeavesExactlyOnce() {
        var pending = PendingFlows<String>()
        pending.add(id: "f1", flow: "one", deadline: 100, token: tokenA)
        XCTAssertEqual(pending.take("f1")?.flow, "one")
        XCTAssertNil(pending.take("f1"), "a second verdict for the same flow must find nothing")
        XCTAssertTrue(pending.expired(now: 1_000).isEmpty)
        XCTAssertTrue(pending.takeAll().isEmpty)
    }

    func testDeadlinesExpireOldestFirstAndOnlyWhenDue() {
        var pending = PendingFlows<String>()
        pending.add(id: "late", flow: "late", deadline: 300, token: nil)
        pending.add(id: "early", flow: "early", deadline: 100, token: nil)
        XCTAssertEqual(pending.nextDeadline, 100)
        XCTAssertTrue(pending.expired(now: 99).isEmpty)
        XCTAssertEqual(pending.expired(now: 300).map(\.id), ["early", "late"])
        XCTAssertTrue(pending.isEmpty)
    }

    func testRememberForProcessTakesOnlyThatProcessesFlows() {
        var pending = PendingFlows<String>()
        pending.add(id: "a1", flow: "a1", deadline: 1, token: tokenA)
        pending.add(id: "a2", flow: "a2", deadline: 2, token: tokenA)
        pending.add(id: "b1", flow: "b1", deadline: 3, token: tokenB)
        pending.add(id: "none", flow: "none", deadline: 4, token: nil)
        XCTAssertEqual(pending.take(token: tokenA).map(\.id), ["a1", "a2"])
        XCTAssertEqual(pending.ids.sorted(), ["b1", "none"])
    }

    func testTakeAllEmptiesTheTable() {
        var pending = PendingFlows<Int>()
        for i in 0..<10 { pending.add(id: "f\(i)", flow: i, deadline: Int64(i), token: nil) }
        XCTAssertEqual(pending.takeAll().count, 10)
        XCTAssertEqual(pending.count, 0)
        XCTAssertNil(pending.nextDeadline)
    }
}
