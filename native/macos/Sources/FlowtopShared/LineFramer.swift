// NDJSON framing with a hard memory bound: a line longer than the limit is reported once and its
// bytes are dropped up to the next newline, so a peer that never sends one costs at most the limit.
// NOT YET BUILT ON A MAC.
import Foundation

public enum FrameEvent: Equatable {
    case line(Data)
    case tooLong(limit: Int)
}

public struct LineFramer {
    private var buffer = Data()
    private var discarding = false
    public let limit: Int

    public init(limit: Int = ProtocolV1.maxLineBytes) { self.limit = limit }

    public var bufferedBytes: Int { buffer.count }

    public mutating func push(_ chunk: Data) -> [FrameEvent] {
        var events: [FrameEvent] = []
        var rest = chunk[...]
        while !rest.isEmpty {
            guard let newline = rest.firstIndex(of: 0x0A) else {
                take(rest, into: &events)
                break
            }
            take(rest[rest.startIndex..<newline], into: &events)
            if discarding {
                discarding = false
            } else if buffer.contains(where: { !Self.isWhitespace($0) }) {
                // Lines that are empty or only whitespace are ignored (protocol v1, "Framing").
                events.append(.line(buffer))
            }
            buffer = Data()
            rest = rest[rest.index(after: newline)...]
        }
        return events
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D
    }

    private mutating func take(_ bytes: Data.SubSequence, into events: inout [FrameEvent]) {
        guard !discarding, !bytes.isEmpty else { return }
        if buffer.count + bytes.count > limit {
            buffer = Data()
            discarding = true
            events.append(.tooLong(limit: limit))
            return
        }
        buffer.append(contentsOf: bytes)
    }
}
