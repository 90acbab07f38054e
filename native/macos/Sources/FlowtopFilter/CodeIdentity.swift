// The designated requirement of the process behind an audit token, for identity rules. Secure route
// only (SecCodeCopyGuestWithAttributes with kSecGuestAttributeAudit): a process that cannot be
// identified that way has no identity here, so it matches no identity rule. Results are cached by
// token bytes (TokenLookupCache): found identities and lasting answers stay, failures that may pass
// (EPERM from this sandbox, seed thread 001) are asked again after a short while.
// NOT YET BUILT OR RUN ON A MAC.
import FlowtopShared
import Foundation
import Security

final class CodeIdentityCache {
    private let lock = NSLock()
    private var cache = TokenLookupCache<String>()

    func requirement(for token: Data?) -> String? {
        guard let token, token.count == FlowFacts.auditTokenBytes else { return nil }
        let now = nowMillis()
        lock.lock()
        let hit = cache.cached(token, now: now)
        lock.unlock()
        let result = hit ?? Self.designatedRequirement(token)
        if hit == nil {
            lock.lock()
            cache.store(token, result, now: now)
            lock.unlock()
        }
        if case let .found(text) = result { return text }
        return nil
    }

    /// kPOSIXErrorESRCH, and errSecCSNoSuchCode: the kernel has no process with this token any more.
    private static let gone: Set<OSStatus> = [100_003, errSecCSNoSuchCode]
    /// The code is unsigned or its signature does not hold: that does not change for this instance.
    private static let unsignable: Set<OSStatus> = [errSecCSUnsigned, errSecCSSignatureFailed, errSecCSSignatureInvalid]

    private static func outcome(_ status: OSStatus) -> TokenLookup<String> {
        gone.contains(status) || unsignable.contains(status) ? .noIdentity : .failed
    }

    private static func designatedRequirement(_ token: Data) -> TokenLookup<String> {
        let attributes = [kSecGuestAttributeAudit: token] as CFDictionary
        var code: SecCode?
        var status = SecCodeCopyGuestWithAttributes(nil, attributes, [], &code)
        guard status == errSecSuccess, let code else { return outcome(status) }
        status = SecCodeCheckValidity(code, [], nil)
        guard status == errSecSuccess else { return outcome(status) }
        var staticCode: SecStaticCode?
        status = SecCodeCopyStaticCode(code, [], &staticCode)
        guard status == errSecSuccess, let staticCode else { return outcome(status) }
        // Every architecture of a universal binary (CVE-2018-10470); resources are not re-hashed here.
        let flags = SecCSFlags(rawValue: kSecCSCheckAllArchitectures | kSecCSDoNotValidateResources)
        status = SecStaticCodeCheckValidity(staticCode, flags, nil)
        guard status == errSecSuccess else { return outcome(status) }
        var requirement: SecRequirement?
        status = SecCodeCopyDesignatedRequirement(staticCode, [], &requirement)
        guard status == errSecSuccess, let requirement else { return outcome(status) }
        var text: CFString?
        status = SecRequirementCopyString(requirement, [], &text)
        guard status == errSecSuccess, let text else { return outcome(status) }
        return .found(text as String)
    }
}
