// NOT YET RUN: `swift test` needs a Swift toolchain (macOS, or Linux: FlowtopShared builds there)
// that this repository's CI lacks.
import FlowtopShared
import XCTest

final class TokenLookupCacheTests: XCTestCase {
    private let token = Data(repeating: 3, count: 32)
    private let dr = "identifier \"com.apple.curl\" and anchor apple"

    func testFoundAndLastingAnswersStay() {
        var cache = TokenLookupCache<String>(retryAfterMs: 100)
        cache.store(token, .found(dr), now: 0)
        cache.store(Data(repeating: 4, count: 32), .noIdentity, now: 0)
        XCTAssertEqual(cache.cached(token, now: 1_000_000), .found(dr))
        XCTAssertEqual(cache.cached(Data(repeating: 4, count: 32), now: 1_000_000), .noIdentity)
    }

    func testAFailureIsAskedAgainAfterAWhile() {
        var cache = TokenLookupCache<String>(retryAfterMs: 100)
        cache.store(token, .failed, now: 1_000)
        XCTAssertEqual(cache.cached(token, now: 1_099), .failed, "not asked again for every flow")
        XCTAssertNil(cache.cached(token, now: 1_100), "then looked up again")
        cache.store(token, .found(dr), now: 1_100)
        XCTAssertEqual(cache.cached(token, now: 9_999_999), .found(dr), "a later success stays")
        XCTAssertEqual(cache.count, 1)
    }

    func testNeverAskedIsNil() {
        XCTAssertNil(TokenLookupCache<String>().cached(token, now: 0))
    }

    func testTheOldestEntryMakesRoom() {
        var cache = TokenLookupCache<String>(capacity: 2)
        let tokens = (0..<3).map { Data(repeating: UInt8($0), count: 32) }
        for t in tokens { cache.store(t, .found(dr), now: 0) }
        XCTAssertNil(cache.cached(tokens[0], now: 0))
        XCTAssertEqual(cache.cached(tokens[2], now: 0), .found(dr))
    }
}
