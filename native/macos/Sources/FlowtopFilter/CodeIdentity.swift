// The designated requirement of the process behind an audit token, for identity rules. Secure route
// only (SecCodeCopyGuestWithAttributes with kSecGuestAttributeAudit): a process that cannot be
// identified that way has no identity here, so it matches no identity rule. Cached by token bytes —
// a token is never reused, so an entry never goes stale; the cache only needs a size bound.
// NOT YET BUILT OR RUN ON A MAC.
import Foundation
import Security

final class CodeIdentityCache {
    private let lock = NSLock()
    private var cache: [Data: String?] = [:]
    private var order: [Data] = []
    private let capacity: Int

    init(capacity: Int = 4096) { self.capacity = capacity }

    func requirement(for token: Data?) -> String? {
        guard let token, token.count == FlowFacts.auditTokenBytes else { return nil }
        lock.lock()
        if let hit = cache[token] {
            lock.unlock()
            return hit
        }
        lock.unlock()
        let value = Self.designatedRequirement(token)
        lock.lock()
        defer { lock.unlock() }
        if cache.updateValue(value, forKey: token) == nil { order.append(token) }
        while order.count > capacity { cache.removeValue(forKey: order.removeFirst()) }
        return value
    }

    private static func designatedRequirement(_ token: Data) -> String? {
        let attributes = [kSecGuestAttributeAudit: token] as CFDictionary
        var code: SecCode?
        guard SecCodeCopyGuestWithAttributes(nil, attributes, [], &code) == errSecSuccess, let code else { return nil }
        guard SecCodeCheckValidity(code, [], nil) == errSecSuccess else { return nil }
        var staticCode: SecStaticCode?
        guard SecCodeCopyStaticCode(code, [], &staticCode) == errSecSuccess, let staticCode else { return nil }
        // Every architecture of a universal binary (CVE-2018-10470); resources are not re-hashed here.
        let flags = SecCSFlags(rawValue: kSecCSCheckAllArchitectures | kSecCSDoNotValidateResources)
        guard SecStaticCodeCheckValidity(staticCode, flags, nil) == errSecSuccess else { return nil }
        var requirement: SecRequirement?
        guard SecCodeCopyDesignatedRequirement(staticCode, [], &requirement) == errSecSuccess, let requirement else { return nil }
        var text: CFString?
        guard SecRequirementCopyString(requirement, [], &text) == errSecSuccess, let text else { return nil }
        return text as String
    }
}
