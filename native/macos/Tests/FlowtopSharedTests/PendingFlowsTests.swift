// NOT YET RUN: `swift test` needs a Swift toolchain (macOS, or Linux: FlowtopShared builds there)
// that this repository's CI lacks.
import FlowtopShared
import XCTest

final class PendingFlowsTests: XCTestCase {
    private let tokenA = Data(repeating: 1, count: 32)
    private let tokenB = Data(repeating: 2, count: 32)
    private let allowByUser = Resumption(allow: true, by: "user")
    private let byDefault = Resumption(allow: true, by: "default")

    private func paused(_ entries: [(String, Int64, Data?)]) -> PendingFlows<String> {
        var pending = PendingFlows<String>()
        for (id, deadline, token) in entries {
            pending.add(id: id, flow: id, deadline: deadline, token: token)
            XCTAssertNil(pending.markPaused(id))
        }
        return pending
    }

    func testEachFlowLeavesExactlyOnce() {
        var pending = paused([("f1", 100, tokenA)])
        guard case let .resumeNow(entry) = pending.claim("f1", with: allowByUser) else { return XCTFail("f1 is paused") }
        XCTAssertEqual(entry.flow, "f1")
        guard case .notPending = pending.claim("f1", with: allowByUser) else { return XCTFail("a second verdict must find nothing") }
        XCTAssertTrue(pending.expired(now: 1_000, with: byDefault).isEmpty)
        XCTAssertTrue(pending.claimAll(with: byDefault).isEmpty)
    }

    func testNothingIsResumableBeforeItsPauseIsReturned() {
        var pending = PendingFlows<String>()
        pending.add(id: "new", flow: "new", deadline: 10, token: tokenA)
        // A verdict arrives before handleNewFlow's pause reached the system: it is kept, not applied.
        guard case .resumeWhenPaused = pending.claim("new", with: allowByUser) else { return XCTFail("must wait for the pause") }
        XCTAssertFalse(pending.contains("new"), "a decided flow no longer waits")
        guard case .notPending = pending.claim("new", with: Resumption(allow: false, by: "user")) else {
            return XCTFail("the first decision wins")
        }
        // The sweeper, a sibling's remember: process and the last client leaving do not take it either.
        XCTAssertTrue(pending.expired(now: 1_000, with: byDefault).isEmpty)
        XCTAssertTrue(pending.claim(token: tokenA, with: byDefault).isEmpty)
        XCTAssertTrue(pending.claimAll(with: byDefault).isEmpty)
        // Once the pause is returned, the kept decision is handed out, once.
        let due = pending.markPaused("new")
        XCTAssertEqual(due?.entry.id, "new")
        XCTAssertEqual(due?.resumption, allowByUser)
        XCTAssertNil(pending.markPaused("new"))
        XCTAssertTrue(pending.claimAll(with: byDefault).isEmpty)
    }

    func testBulkDecisionsDeferFlowsStillPausing() {
        var pending = paused([("old", 5, tokenA)])
        pending.add(id: "young", flow: "young", deadline: 6, token: tokenA)
        XCTAssertEqual(pending.claimAll(with: byDefault).map(\.id), ["old"])
        XCTAssertEqual(pending.markPaused("young")?.resumption, byDefault)
        XCTAssertTrue(pending.isEmpty)
    }

    func testAPausedFlowWithoutDecisionJustWaits() {
        var pending = PendingFlows<String>()
        pending.add(id: "f", flow: "f", deadline: 50, token: nil)
        XCTAssertNil(pending.markPaused("f"))
        XCTAssertEqual(pending.ids, ["f"])
        XCTAssertNil(pending.markPaused("f"), "marking twice changes nothing")
    }

    func testDeadlinesExpireOldestFirstAndOnlyWhenDue() {
        var pending = paused([("late", 300, nil), ("early", 100, nil)])
        XCTAssertEqual(pending.nextDeadline, 100)
        XCTAssertTrue(pending.expired(now: 99, with: byDefault).isEmpty)
        XCTAssertEqual(pending.expired(now: 300, with: byDefault).map(\.id), ["early", "late"])
        XCTAssertTrue(pending.isEmpty)
    }

    func testRememberForProcessTakesOnlyThatProcessesFlows() {
        var pending = paused([("a1", 1, tokenA), ("a2", 2, tokenA), ("b1", 3, tokenB), ("none", 4, nil)])
        XCTAssertEqual(pending.claim(token: tokenA, with: allowByUser).map(\.id), ["a1", "a2"])
        XCTAssertEqual(pending.ids.sorted(), ["b1", "none"])
    }

    func testClaimAllEmptiesTheTable() {
        var pending = paused((0..<10).map { i -> (String, Int64, Data?) in ("f\(i)", Int64(i), nil) })
        XCTAssertEqual(pending.claimAll(with: byDefault).count, 10)
        XCTAssertEqual(pending.count, 0)
        XCTAssertNil(pending.nextDeadline)
    }
}
