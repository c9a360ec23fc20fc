// swift-tools-version:5.9
// The libFuzzer target of libhammer (tests/fuzz/README.md). Its targets are the library's own sources, reached through
// symlinks (Sources/HammerCore -> ../../../Sources/HammerCore, ...), plus the fuzz entry point in Sources/FuzzHammer.
// Built by `make fuzz-build` with -sanitize=fuzzer,address and -parse-as-library (libFuzzer supplies main).
import PackageDescription

let package = Package(
    name: "hammer-fuzz",
    targets: [
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis", pkgConfig: "hiredis"),
        .systemLibrary(name: "CHammer", path: "Sources/CHammer"),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl"),
        .target(name: "HammerCore", path: "Sources/HammerCore"),
        .target(name: "Hammer", dependencies: ["HammerCore", "CHiredis", "COpenSSL", "CHammer"],
                path: "Sources/Hammer"),
        // main for SwiftPM's debug executables (which it links with --defsym main=fuzz_hammer_main).
        .target(name: "FuzzMain", path: "Sources/FuzzMain"),
        .executableTarget(name: "fuzz-hammer", dependencies: ["Hammer", "HammerCore", "CHammer", "FuzzMain"],
                          path: "Sources/FuzzHammer"),
    ]
)
