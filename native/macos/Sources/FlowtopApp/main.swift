// Flowtop.app: the container that carries the system extension and turns it on or off.
//   /Applications/Flowtop.app/Contents/MacOS/Flowtop activate     install + enable the content filter
//   /Applications/Flowtop.app/Contents/MacOS/Flowtop deactivate   disable + uninstall it
// Run as the logged-in user (not sudo): macOS asks that user to approve the extension.
// NOT YET BUILT OR RUN ON A MAC.
import FlowtopShared
import Foundation
import NetworkExtension
import SystemExtensions

func finish(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("flowtop: \(message)\n".utf8))
    exit(code)
}

/// Turns the content filter configuration on (pointing at our extension) or removes it.
func configureFilter(enable: Bool) {
    let manager = NEFilterManager.shared()
    manager.loadFromPreferences { error in
        if let error { finish("reading the filter configuration failed: \(error.localizedDescription)", code: 1) }
        guard enable else {
            manager.removeFromPreferences { error in
                if let error { finish("removing the filter configuration failed: \(error.localizedDescription)", code: 1) }
                finish("content filter removed", code: 0)
            }
            return
        }
        let configuration = manager.providerConfiguration ?? NEFilterProviderConfiguration()
        configuration.filterSockets = true
        configuration.filterPackets = false
        configuration.filterDataProviderBundleIdentifier = FlowtopIDs.filterBundleID
        manager.providerConfiguration = configuration
        manager.localizedDescription = "flowtop"
        manager.isEnabled = true
        manager.saveToPreferences { error in
            if let error { finish("enabling the content filter failed: \(error.localizedDescription)", code: 1) }
            finish("content filter enabled; start the bridge: sudo launchctl bootstrap system /Library/LaunchDaemons/com.flowtop.bridge.plist", code: 0)
        }
    }
}

final class ExtensionRequests: NSObject, OSSystemExtensionRequestDelegate {
    let activating: Bool

    init(activating: Bool) { self.activating = activating }

    func request(_ request: OSSystemExtensionRequest,
                 actionForReplacingExtension existing: OSSystemExtensionProperties,
                 withExtension ext: OSSystemExtensionProperties) -> OSSystemExtensionRequest.ReplacementAction {
        .replace
    }

    func requestNeedsUserApproval(_ request: OSSystemExtensionRequest) {
        print("flowtop: approve the extension in System Settings (Privacy & Security on macOS 13–14; General › Login Items & Extensions › Network Extensions on macOS 15+). Waiting…")
    }

    func request(_ request: OSSystemExtensionRequest, didFinishWithResult result: OSSystemExtensionRequest.Result) {
        if result == .willCompleteAfterReboot { print("flowtop: the change completes after a restart") }
        if activating { configureFilter(enable: true) } else { finish("extension removed", code: 0) }
    }

    func request(_ request: OSSystemExtensionRequest, didFailWithError error: Error) {
        finish("the system extension request failed: \(error.localizedDescription)", code: 1)
    }
}

let arguments = CommandLine.arguments.dropFirst()
guard let command = arguments.first, arguments.count == 1, ["activate", "deactivate"].contains(command) else {
    finish("usage: Flowtop activate | deactivate", code: 2)
}
let activating = command == "activate"
let delegate = ExtensionRequests(activating: activating)
let request = activating
    ? OSSystemExtensionRequest.activationRequest(forExtensionWithIdentifier: FlowtopIDs.filterBundleID, queue: .main)
    : OSSystemExtensionRequest.deactivationRequest(forExtensionWithIdentifier: FlowtopIDs.filterBundleID, queue: .main)
request.delegate = delegate
if activating {
    OSSystemExtensionManager.shared.submitRequest(request)
} else {
    // Remove the configuration first, so no flow is sent to an extension that is going away.
    NEFilterManager.shared().loadFromPreferences { _ in
        NEFilterManager.shared().removeFromPreferences { _ in
            OSSystemExtensionManager.shared.submitRequest(request)
        }
    }
}
dispatchMain()
