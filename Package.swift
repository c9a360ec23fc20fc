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
        // OpenSSL 3 from Debian's libssl-dev, for rediss:// (TLS over our own sockets, feeding hiredis's reader).
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL",
                       pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // The public C header, so Swift uses the very structs and constants C callers see.
        .systemLibrary(name: "CHammer", path: "Sources/CHammer"),
        // Pure Swift: URL parsing, key layout, scripts, algorithms, reply decoding. No Redis, no C.
        .target(name: "HammerCore", path: "Sources/HammerCore"),
        // The library: connections (sockets, TLS, hiredis's reply reader), pool and the thin @_cdecl layer.
        .target(name: "Hammer", dependencies: ["HammerCore", "CHiredis", "COpenSSL", "CHammer"],
                path: "Sources/Hammer"),
        .testTarget(name: "HammerCoreTests", dependencies: ["HammerCore"], path: "Tests/HammerCoreTests"),
        // Drives the library against a real redis-server it starts, and compares with the pure models.
        .testTarget(name: "HammerRedisTests", dependencies: ["Hammer", "HammerCore", "CHammer", "CHiredis"],
                    path: "Tests/HammerRedisTests"),
    ]
)
