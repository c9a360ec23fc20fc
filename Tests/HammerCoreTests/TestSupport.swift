// Helpers shared by the HammerCore unit tests: a seeded generator, byte helpers, files and a child process.
import Glibc
import XCTest
@testable import HammerCore

/// SplitMix64: a fixed seed makes every "random" case reproducible from the failure message.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// The repository root, found from this file's path (Tests/HammerCoreTests/TestSupport.swift).
func repoRoot(_ file: StaticString = #filePath) -> String {
    var parts = "\(file)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}

func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, f) }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}

@discardableResult
func writeFile(_ path: String, _ data: [UInt8]) -> Bool {
    guard let f = fopen(path, "wb") else { return false }
    defer { fclose(f) }
    let n = data.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
    return n == data.count
}

/// Runs a shell command and returns its standard output, or nil if it could not run or failed.
func runCommand(_ command: String) -> String? {
    guard let p = popen(command, "r") else { return nil }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buf.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, p) }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    let status = pclose(p)
    return status == 0 ? text(out) : nil
}

/// A fresh private directory under /tmp; removed by `removeTree`.
func makeTempDir() -> String? {
    var template = Array("/tmp/hammercore-tests-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { buf -> String? in
        guard let base = buf.baseAddress, let p = mkdtemp(base) else { return nil }
        return String(cString: p)
    }
}

func removeTree(_ dir: String) {
    precondition(dir.hasPrefix("/tmp/hammercore-tests-"))
    _ = runCommand("rm -rf '\(dir)'")
}
