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
        if case .success(.unsupported) = decode(#"{"type":"rules-list"}"#) {} else { XCTFail("rules-list is valid but unsupported") }
        XCTAssertEqual(decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"once","ref":null,"scope":null}"#),
                       .success(.verdict(id: "F1", allow: true, remember: .once, ref: nil)), "null means absent")
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"once","scope":"process"}"#)), "bad-message")
        XCTAssertEqual(errorCode(decode(#"{"type":"verdict","id":"","action":"allow","remember":"once"}"#)), "bad-message")
        if case .success(.unsupported) = decode(#"{"type":"verdict","id":"F1","action":"allow","remember":"always","scope":"endpoint"}"#) {} else {
            XCTFail("an endpoint-scoped rule is valid but unsupported")
        }
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
