// Entry point of the system extension: hand control to NetworkExtension, which instantiates the
// provider class named in Info.plist (NEProviderClasses), and listen for the bridge at once, as
// Apple's filter sample starts its XPC listener here: waiting for startFilter would leave the bridge
// retrying (up to 30 s between tries) while the filter already runs. NOT YET BUILT OR RUN ON A MAC.
import Foundation
import NetworkExtension

autoreleasepool {
    NEProvider.startSystemExtensionMode()
    BridgeLink.shared.start()
}
dispatchMain()
