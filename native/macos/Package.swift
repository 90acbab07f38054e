// swift-tools-version:5.9
// flowtop for macOS: the NetworkExtension content filter, the launchd bridge that serves protocol v1 on
// /var/run/flowtop.sock, and the small container app that activates the filter.
//
// NOT YET BUILT ON A MAC: written and reviewed on Linux, where no Swift toolchain for Apple's SDKs
// exists. `swift build` produces the three executables; scripts/bundle.sh assembles and signs the
// bundles (SwiftPM cannot make .app or .systemextension bundles by itself). See README.md.
import PackageDescription

let package = Package(
    name: "flowtop-macos",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "com.flowtop.filter", targets: ["FlowtopFilter"]),
        .executable(name: "flowtop-bridge", targets: ["flowtop-bridge"]),
        .executable(name: "Flowtop", targets: ["FlowtopApp"]),
    ],
    targets: [
        // Pure logic shared by the filter and the bridge: protocol v1 types, pending flows with
        // deadlines, the rule cache, line framing. No NetworkExtension, no XPC: `swift test` runs it.
        .target(name: "FlowtopShared"),
        .executableTarget(
            name: "FlowtopFilter",
            dependencies: ["FlowtopShared"],
            linkerSettings: [.linkedFramework("NetworkExtension"), .linkedFramework("Security")]
        ),
        .executableTarget(
            name: "flowtop-bridge",
            dependencies: ["FlowtopShared"]
        ),
        .executableTarget(
            name: "FlowtopApp",
            dependencies: ["FlowtopShared"],
            linkerSettings: [.linkedFramework("SystemExtensions"), .linkedFramework("NetworkExtension")]
        ),
        // Fixtures/extension-lines.ndjson is shared with test/native-darwin/bridge-lines.test.ts: the
        // Swift side checks it encodes exactly these lines, the TypeScript side that they decode.
        .testTarget(name: "FlowtopSharedTests", dependencies: ["FlowtopShared"], resources: [.copy("Fixtures")]),
    ]
)
