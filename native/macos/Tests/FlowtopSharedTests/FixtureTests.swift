// The bridge's encoder against Fixtures/extension-lines.ndjson, the lines flowtop's TypeScript
// decoder is tested with (test/native-darwin/bridge-lines.test.ts). Compared as JSON values, so key
// order does not matter. NOT YET RUN: `swift test` needs a Mac.
import FlowtopShared
import XCTest

final class FixtureTests: XCTestCase {
    private func fixtureLines() throws -> [Data] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "extension-lines", withExtension: "ndjson", subdirectory: "Fixtures"))
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.isEmpty }.map { Data($0.utf8) }
    }

    private func assertSameJSON(_ encoded: Data?, _ expected: Data, file: StaticString = #filePath, line: UInt = #line) throws {
        let data = try XCTUnwrap(encoded, file: file, line: line)
        XCTAssertEqual(data.last, 0x0A, file: file, line: line)
        let got = try JSONSerialization.jsonObject(with: data.dropLast()) as? NSDictionary
        let want = try JSONSerialization.jsonObject(with: expected) as? NSDictionary
        XCTAssertEqual(got, want, file: file, line: line)
    }

    func testEncoderProducesTheFixtureLines() throws {
        let lines = try fixtureLines()
        XCTAssertEqual(lines.count, 8)

        try assertSameJSON(encodeLine(HelloMessage(version: "0.1.0", host: "mac.example", defaultAction: "allow", timeoutMs: 30_000)), lines[0])

        var paused = FlowRecord(id: "976999BB-C169-42BE-9CAF-41D22E332848", time: 1_700_000_000_000, direction: "outbound", protocol: "tcp",
                                family: "ipv4", local: Endpoint(address: "192.168.1.6", port: 52304), remote: Endpoint(address: "18.165.186.203", port: 443))
        paused.remoteHost = RemoteHost(name: "www.imdb.com")
        paused.token = "9QEAAPUBAAAUAAAA9QEAABQAAACSEAAAp4YBAFsAAAA="
        paused.appToken = "9QEAAPUBAAAUAAAA9QEAABQAAAC8AgAAp4YBAAMAAAA="
        paused.pid = 4242
        paused.uid = 501
        paused.pending = PendingInfo(deadline: 1_700_000_030_000)
        try assertSameJSON(encodeLine(FlowMessage(flow: paused)), lines[1])

        var ruled = FlowRecord(id: "0F2C6B1E-0000-4000-8000-000000000001", time: 1_700_000_000_100, direction: "outbound", protocol: "udp",
                               family: "ipv6", local: Endpoint(address: "::", port: 0), remote: Endpoint(address: "::ffff:192.0.2.1", port: 53))
        ruled.token = paused.token
        ruled.pid = 4242
        ruled.uid = 501
        ruled.verdict = Verdict(action: "block", by: "rule", ruleId: "6B1D3C1A-2E4F-4C1B-9A77-0123456789AB")
        try assertSameJSON(encodeLine(FlowMessage(flow: ruled)), lines[2])

        var unattributed = FlowRecord(id: "0F2C6B1E-0000-4000-8000-000000000002", time: 1_700_000_000_200, direction: "inbound", protocol: "other",
                                 family: "ipv4", local: Endpoint(address: "0.0.0.0", port: 0), remote: Endpoint(address: "0.0.0.0", port: 0))
        unattributed.ownerError = "the system gave no audit token for this flow"
        unattributed.verdict = Verdict(action: "allow", by: "default")
        try assertSameJSON(encodeLine(FlowMessage(flow: unattributed)), lines[3])

        try assertSameJSON(encodeLine(VerdictMessage(id: paused.id, time: 1_700_000_004_000, verdict: Verdict(action: "allow", by: "user"))), lines[4])
        try assertSameJSON(encodeLine(ErrorMessage(code: "unknown-rule", message: "no rule \"r9\"", ref: "k2")), lines[5])

        let requirement = "anchor apple generic and identifier \"com.example.app\" and certificate leaf[subject.OU] = \"EXAMPLE123\""
        let stored = IdentityRule(id: "6B1D3C1A-2E4F-4C1B-9A77-0123456789AB", identity: requirement, action: "block", created: 1_700_000_000_000)
        let list = encodeRuleList([ProtocolRule(stored)], ref: "r1")
        XCTAssertEqual(list.count, 1)
        try assertSameJSON(list.first, lines[6])
        var labelled = stored
        labelled.label = "Example"
        labelled.note = "added from flowtop"
        try assertSameJSON(encodeLine(RuleChangedMessage(op: "added", rule: ProtocolRule(labelled), ref: "k1")), lines[7])
    }
}
