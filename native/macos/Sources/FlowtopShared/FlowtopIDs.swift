// Names both sides of the XPC link and the socket agree on, and the code-signing requirement each
// side sets for its peer. Pure values: no Security, no XPC, so this builds and is tested anywhere.
// NOT YET BUILT ON A MAC.
import Foundation

public enum FlowtopIDs {
    public static let filterBundleID = "com.flowtop.filter"
    public static let bridgeIdentifier = "com.flowtop.bridge"
    public static let appBundleID = "com.flowtop.app"
    /// Must match NEMachServiceName in the extension's Info.plist: "<TeamID>.com.flowtop.filter".
    public static func machServiceName(teamID: String) -> String { "\(teamID).\(filterBundleID)" }
    public static let socketPath = "/var/run/flowtop.sock"
    public static let groupName = "flowtop"
}

/// Code-signing requirements for the peer, in Apple's requirement language. Both processes are
/// signed by the same team, so the Team ID comes from our own signature (see SelfSignature).
public enum PeerRequirement {
    public static func forIdentifier(_ identifier: String, teamID: String) -> String? {
        // Team IDs are ten upper-case letters or digits; refuse anything that could alter the expression.
        guard teamID.count == 10, teamID.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) }) else { return nil }
        return "anchor apple generic and identifier \"\(identifier)\" and certificate leaf[subject.OU] = \"\(teamID)\""
    }
}
