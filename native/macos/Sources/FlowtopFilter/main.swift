// Entry point of the system extension: hand control to NetworkExtension, which instantiates the
// provider class named in Info.plist (NEProviderClasses). NOT YET BUILT OR RUN ON A MAC.
import Foundation
import NetworkExtension

autoreleasepool {
    NEProvider.startSystemExtensionMode()
}
dispatchMain()
