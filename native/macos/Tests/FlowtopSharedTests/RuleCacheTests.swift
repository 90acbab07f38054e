// NOT YET RUN: `swift test` needs a Mac (or a Swift toolchain) that this repository's CI lacks.
import FlowtopShared
import XCTest

final class RuleCacheTests: XCTestCase {
    private let token = Data(repeating: 7, count: 32)
    private let curlDR = "identifier \"com.apple.curl\" and anchor apple"

    func testProcessVerdictsAreKeyedByTokenOnly() {
        var cache = RuleCache()
        cache.rememberProcess(token: token, allow: false)
        XCTAssertEqual(cache.verdict(token: token, identity: { nil }), CachedVerdict(allow: false, ruleId: nil))
        XCTAssertNil(cache.verdict(token: Data(repeating: 8, count: 32), identity: { nil }), "another process instance is not covered")
    }

    func testUnknownIdentityNeverMatches() {
        var cache = RuleCache()
        cache.add(IdentityRule(id: "r1", identity: curlDR, action: "block", created: 1))
        XCTAssertNil(cache.verdict(token: token, identity: { nil }))
        XCTAssertEqual(cache.verdict(token: token, identity: { self.curlDR }), CachedVerdict(allow: false, ruleId: "r1"))
    }

    func testIdentityIsNotComputedWithoutIdentityRules() {
        let cache = RuleCache()
        var asked = false
        _ = cache.verdict(token: token, identity: { asked = true; return nil })
        XCTAssertFalse(asked)
    }

    func testProcessVerdictsAreBounded() {
        var cache = RuleCache(maxProcessVerdicts: 2)
        let tokens = (0..<3).map { Data(repeating: UInt8($0), count: 32) }
        for t in tokens { cache.rememberProcess(token: t, allow: true) }
        XCTAssertNil(cache.verdict(token: tokens[0], identity: { nil }), "the oldest entry makes room")
        XCTAssertNotNil(cache.verdict(token: tokens[2], identity: { nil }))
    }
}
