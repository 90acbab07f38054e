// swift-tools-version:5.9
// flowtop for macOS: the NetworkExtension content filter, the launchd bridge that serves protocol v1 on
// /var/run/flowtop.sock, and the small container app that activates the filter.
//
// NOT YET BUILT ON A MAC: written and reviewed on Linux. On macOS `swift build` produces the three
// executables; scripts/bundle.sh assembles and signs the bundles (SwiftPM cannot make .app or
// .systemextension bundles by itself). Anywhere else only FlowtopShared and its tests are declared,
// so `swift build` and `swift test` work with a Linux Swift toolchain. See README.md.
import PackageDescription

// Pure logic shared by the filter and the bridge: protocol v1 types and client-message validation,
// pending flows with deadlines, the rule cache, token-keyed lookup caching, line framing. Foundation
// only: no Security, no NetworkExtension, no Objective-C runtime.
var targets: [Target] = [
    .target(name: "FlowtopShared"),
    // Fixtures/extension-lines.ndjson is shared with test/native-darwin/bridge-lines.test.ts: the
    // Swift side checks it encodes exactly these lines, the TypeScript side that they decode.
    .testTarget(name: "FlowtopSharedTests", dependencies: ["FlowtopShared"], resources: [.copy("Fixtures")]),
]
var products: [Product] = [.library(name: "FlowtopShared", targets: ["FlowtopShared"])]

#if os(macOS)
targets += [
    // The XPC contract (@objc protocols) and our own Team ID (Security): what both sides of the XPC
    // link need and only macOS has.
    .target(name: "FlowtopXPC", linkerSettings: [.linkedFramework("Security")]),
    .executableTarget(
        name: "FlowtopFilter",
        dependencies: ["FlowtopShared", "FlowtopXPC"],
        linkerSettings: [.linkedFramework("NetworkExtension"), .linkedFramework("Security")]
    ),
    .executableTarget(
        name: "flowtop-bridge",
        dependencies: ["FlowtopShared", "FlowtopXPC"]
    ),
    .executableTarget(
        name: "FlowtopApp",
        dependencies: ["FlowtopShared"],
        linkerSettings: [.linkedFramework("SystemExtensions"), .linkedFramework("NetworkExtension")]
    ),
]
products += [
    .executable(name: "com.flowtop.filter", targets: ["FlowtopFilter"]),
    .executable(name: "flowtop-bridge", targets: ["flowtop-bridge"]),
    .executable(name: "Flowtop", targets: ["FlowtopApp"]),
]
#endif

let package = Package(
    name: "flowtop-macos",
    platforms: [.macOS(.v13)],
    products: products,
    targets: targets
)
