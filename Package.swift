// swift-tools-version:5.9
// libhammer: the Redis backend of the Hammer rate limiter, as a C library.
import PackageDescription

let package = Package(
    name: "hammer",
    products: [
        .library(name: "hammer", type: .dynamic, targets: ["Hammer"]),
    ],
    targets: [
        // hiredis from Debian's libhiredis-dev (0.14.1), found by pkg-config.
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis",
                       pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        // The public C header, so Swift uses the very structs and constants C callers see.
        .systemLibrary(name: "CHammer", path: "Sources/CHammer"),
        // Pure Swift: URL parsing, key layout, scripts, algorithms, reply decoding. No Redis, no C.
        .target(name: "HammerCore", path: "Sources/HammerCore"),
        // The library: hiredis connection pool and the thin @_cdecl layer.
        .target(name: "Hammer", dependencies: ["HammerCore", "CHiredis", "CHammer"], path: "Sources/Hammer"),
        .testTarget(name: "HammerCoreTests", dependencies: ["HammerCore"], path: "Tests/HammerCoreTests"),
        // Drives the library against a real redis-server it starts, and compares with the pure models.
        .testTarget(name: "HammerRedisTests", dependencies: ["Hammer", "HammerCore", "CHammer", "CHiredis"],
                    path: "Tests/HammerRedisTests"),
    ]
)
