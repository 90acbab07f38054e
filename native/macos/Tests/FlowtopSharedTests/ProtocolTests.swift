// Checks the Swift side against protocol v1 as src/protocol/messages.ts defines it.
// NOT YET RUN: `swift test` needs a Mac (or a Swift toolchain) that this repository's CI lacks.
import FlowtopShared
import XCTest

final class ProtocolTests: XCTestCase {
    func testFlowLinesUseTheTypeScriptFieldNamesAndOmitAbsentFields() throws {
        var flow = FlowRecord(id: "F1", time: 1_700_000_000_000, direction: "outbound", protocol: "tcp", family: "ipv4",
                              local: Endpoint(address: "192.168.1.6", port: 52304), remote: Endpoint(address: "18.165.186.203", port: 443))
        flow.token = Data(repeating: 1, count: 32).base64EncodedString()
        flow.pending = PendingInfo(deadline: 1_700_000_030_000)
        let line = try XCTUnwrap(encodeLine(FlowMessage(flow: flow)))
        XCTAssertEqual(line.last, 0x0A)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: line.dropLast()) as? [String: Any])
        XCTAssertEqual(object["type"] as? String, "flow")
        let body = try XCTUnwrap(object["flow"] as? [String: Any])
        XCTAssertEqual(body["protocol"] as? String, "tcp")
        XCTAssertEqual((body["pending"] as? [String: Any])?["deadline"] as? Int64, 1_700_000_030_000)
        XCTAssertNil(body["appToken"], "absent optionals are left out, not null")
        XCTAssertNil(body["verdict"])
    }

    func testClientRequestsAreValidated() {
        func decode(_ text: String) -> Result<ClientRequest, RequestError> { decodeClientRequest(Data(text.utf8)) }
        XCTAssertEqual(decode(#"{"type":"subscribe","protocol":1,"client":{"name":"flowtop","version":"0.1.0"},"ref":"s"}"#),
                       .success(.subscribe(protocolVersion: 1, clientName: "flowtop", clientVersion: "0.1.0", ref: "s")))
        XCTAssertEqual(decode(#"{"type":"verdict","id":"F1","action":"block","remember":"process"}"#),
                       .success(.verdict(id: "F1", allow: false, remember: .process, ref: nil)))
        XCTAssertEqual(try? decode("{nope").get(), nil)
        XCTAssertEqual(errorCode(decode("{nope")), "bad-json")
        XCTAssertEqual(errorCode(decode("[1]")), "bad-message")
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"F1","action":"maybe","remember":"once","ref":"r"}"#)), "bad-message")
        XCTAssertEqual(errorCode(decode(#"{"type":"subscribe","protocol":true,"client":{"name":"x","version":"1"}}"#)), "bad-message")
        XCTAssertEqual(errorCode(decode(#"{"type":"launch-missiles"}"#)), "unknown-type")
        XCTAssertEqual(decode(#"{"type":"rules-list","ref":"r1"}"#), .success(.rulesList(ref: "r1")))
        XCTAssertEqual(decode(#"{"type":"rule-remove","id":"R1","ref":"k2"}"#), .success(.ruleRemove(id: "R1", ref: "k2")))
        XCTAssertEqual(errorCode(decode(#"{"type":"rule-remove","id":7}"#)), "bad-message")
        XCTAssertEqual(decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"once","ref":null,"scope":null}"#),
                       .success(.verdict(id: "F1", allow: true, remember: .once, ref: nil)), "null means absent")
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"once","scope":"process"}"#)), "bad-message")
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"","action":"allow","remember":"once"}"#)), "bad-message")
        for extra in [#""scope":"endpoint""#, #""scope":"domain""#, #""forMs":60000"#, #""session":true"#] {
            if case .success(.unsupported) = decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"always","# + extra + "}") {} else {
                XCTFail("valid but unsupported here: \(extra)")
            }
        }
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"once","forMs":60000}"#)), "bad-message")
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"always","scope":"planet"}"#)), "bad-message")
    }

    func testRuleAddKeepsWhatTheFilterCanEnforceAndSaysWhyNotOtherwise() {
        func decode(_ text: String) -> Result<ClientRequest, RequestError> { decodeClientRequest(Data(text.utf8)) }
        let dr = #"{"kind":"requirement","value":"identifier "com.apple.curl" and anchor apple","label":"curl"}"#
        XCTAssertEqual(decode(#"{"type":"rule-add","ref":"a1","rule":{"action":"block","identity":"# + dr + #","duration":{"kind":"always"},"note":"no curl","blockMode":"drop","enabled":true}}"#),
                       .success(.ruleAdd(RuleAddition(requirement: "identifier "com.apple.curl" and anchor apple", allow: false, label: "curl", note: "no curl"), ref: "a1")))
        // Valid protocol, but not one program for good: not-supported, with the ref.
        for spec in [
            #"{"action":"allow","duration":{"kind":"always"}}"#,
            #"{"action":"allow","identity":{"kind":"sha256","value":"ab"},"duration":{"kind":"always"}}"#,
            #"{"action":"allow","identity":"# + dr + #","duration":{"kind":"once"}}"#,
            #"{"action":"allow","identity":"# + dr + #","duration":{"kind":"always"},"endpoint":{"port":443}}"#,
            #"{"action":"block","identity":"# + dr + #","duration":{"kind":"always"},"blockMode":"reject"}"#,
            #"{"action":"allow","identity":"# + dr + #","duration":{"kind":"always"},"enabled":false}"#,
        ] {
            guard case let .success(.unsupported(reason, ref)) = decode(#"{"type":"rule-add","ref":"a2","rule":"# + spec + "}") else {
                XCTFail("not supported: \(spec)")
                continue
            }
            XCTAssertEqual(ref, "a2")
            XCTAssertTrue(reason.contains("one program"), reason)
        }
        // Malformed: bad-message naming the field.
        for (spec, field) in [
            (#"{"identity":"# + dr + #","duration":{"kind":"always"}}"#, "rule.action"),
            (#"{"action":"allow","identity":"# + dr + #"}"#, "rule.duration"),
            (#"{"action":"allow","identity":{"kind":"dr","value":"x"},"duration":{"kind":"always"}}"#, "rule.identity"),
            (#"{"action":"allow","identity":"# + dr + #","duration":{"kind":"always"},"enabled":1}"#, "rule.enabled"),
        ] {
            guard case let .failure(error) = decode(#"{"type":"rule-add","rule":"# + spec + "}") else {
                XCTFail("malformed: \(spec)")
                continue
            }
            XCTAssertEqual(error.code, "bad-message")
            XCTAssertTrue(error.message.contains(field), error.message)
        }
    }

    func testLongRuleListsAreSplitIntoLinesThatSayTheyContinue() throws {
        let rules = (0..<20).map { i in
            ProtocolRule(IdentityRule(id: "R\(i)", identity: String(repeating: "x", count: 100), action: "allow", created: Int64(i)))
        }
        let lines = encodeRuleList(rules, ref: "r7", limit: 1_000)
        XCTAssertGreaterThan(lines.count, 1)
        var seen: [String] = []
        for (index, line) in lines.enumerated() {
            XCTAssertLessThanOrEqual(line.count - 1, 1_000)
            let message = try JSONDecoder().decode(RulesMessage.self, from: line.dropLast())
            XCTAssertEqual(message.ref, "r7", "every part carries the ref")
            XCTAssertEqual(message.continues, index < lines.count - 1 ? true : nil, "all but the last continue")
            seen += message.rules.map(\.id)
        }
        XCTAssertEqual(seen, rules.map(\.id), "each rule once, in order")
        let empty = encodeRuleList([], ref: nil)
        XCTAssertEqual(empty.count, 1)
        XCTAssertEqual(try JSONDecoder().decode(RulesMessage.self, from: empty[0].dropLast()).rules, [])
    }

    func testFramerBoundsMemoryAndSkipsOverlongLines() {
        var framer = LineFramer(limit: 8)
        XCTAssertEqual(framer.push(Data("abc\nde".utf8)), [.line(Data("abc".utf8))])
        XCTAssertEqual(framer.push(Data("fghijklmnop".utf8)), [.tooLong(limit: 8)])
        XCTAssertEqual(framer.bufferedBytes, 0)
        XCTAssertEqual(framer.push(Data("qrs\nok\n\n \r\n".utf8)), [.line(Data("ok".utf8))], "blank lines are ignored")
    }

    func testPeerRequirementRefusesMalformedTeamIDs() {
        XCTAssertEqual(PeerRequirement.forIdentifier("com.flowtop.bridge", teamID: "ABCDE12345"),
                       "anchor apple generic and identifier \"com.flowtop.bridge\" and certificate leaf[subject.OU] = \"ABCDE12345\"")
        XCTAssertNil(PeerRequirement.forIdentifier("com.flowtop.bridge", teamID: "ABC\" or true"))
    }

    private func errorCode(_ result: Result<ClientRequest, RequestError>) -> String? {
        if case let .failure(error) = result { return error.code }
        return nil
    }
}
