// Identity rules ("remember: always" verdicts and clients' rule-add), kept on disk so they outlive
// the extension.
// Written atomically (temporary file + rename), readable by root only. NOT YET BUILT OR RUN ON A MAC.
import FlowtopShared
import Foundation
import os.log

private let log = Logger(subsystem: FlowtopIDs.bridgeIdentifier, category: "rules")

struct RuleStore {
    let url: URL
    private(set) var rules: [IdentityRule] = []

    static let defaultURL = URL(fileURLWithPath: "/Library/Application Support/flowtop/rules.json")

    init(url: URL = RuleStore.defaultURL) {
        self.url = url
        guard let data = try? Data(contentsOf: url) else { return }
        if let loaded = try? JSONDecoder().decode([IdentityRule].self, from: data) {
            rules = loaded
        } else {
            // Never overwrite a file we could not read: move it aside and say so.
            let aside = url.appendingPathExtension("unreadable-\(nowMillis())")
            try? FileManager.default.moveItem(at: url, to: aside)
            log.error("\(url.path, privacy: .public) did not decode; moved to \(aside.path, privacy: .public)")
        }
    }

    /// A rule for a program replaces any earlier rule for the same program (one program, one
    /// rule); returns the rule it replaced.
    @discardableResult
    mutating func add(_ rule: IdentityRule) -> IdentityRule? {
        let replaced = rules.first { $0.identity == rule.identity }
        rules.removeAll { $0.identity == rule.identity }
        rules.append(rule)
        save()
        return replaced
    }

    /// Removes a rule by id; returns it as it was, or nil when there is none.
    mutating func remove(id: String) -> IdentityRule? {
        guard let index = rules.firstIndex(where: { $0.id == id }) else { return nil }
        let removed = rules.remove(at: index)
        save()
        return removed
    }

    func json() -> Data {
        (try? JSONEncoder().encode(rules)) ?? Data("[]".utf8)
    }

    private func save() {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try json().write(to: url, options: .atomic)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
        } catch {
            log.error("saving rules failed: \(error.localizedDescription, privacy: .public)")
        }
    }
}
