// A real redis-server on a free loopback port, for the tests of this target. Never a mock.
import Foundation
import Glibc

final class RedisProcess {
    let port: Int
    let dir: String
    private var process = Process()

    let extra: [String]

    init(_ extra: [String] = []) throws {
        self.extra = extra
        port = RedisProcess.freePort()
        dir = NSTemporaryDirectory() + "hammer-swift-redis-\(getpid())-\(port)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try start()
    }

    /// Stops the server (it keeps its port for start()).
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGCONT)
            process.terminate()
            process.waitUntilExit()
        }
    }

    func pause() { kill(process.processIdentifier, SIGSTOP) }
    func resume() { kill(process.processIdentifier, SIGCONT) }

    func start() throws {
        process = Process()
        let exe = try RedisProcess.executable()
        process.executableURL = URL(fileURLWithPath: exe)
        process.arguments = ["--bind", "127.0.0.1", "--port", "\(port)", "--save", "", "--appendonly", "no",
                             "--dir", dir, "--loglevel", "warning"] + RedisProcess.debugArguments(exe) + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 {
            if RedisProcess.canConnect(port) {
                // With AOF on, a fresh server first writes its base file in a forked child; wait for that, so a
                // test's short timeouts meet a server that answers at its usual pace.
                if extra.contains("--appendonly") { waitForAOFRewrite() }
                return
            }
            usleep(10_000)
        }
        throw NSError(domain: "hammer-tests", code: 2, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start"])
    }

    /// The server binary: $HAMMER_REDIS_SERVER (`make test-servers` sets it to each server it tests), else
    /// Debian's redis-server.
    static func executable() throws -> String {
        if let e = ProcessInfo.processInfo.environment["HAMMER_REDIS_SERVER"], !e.isEmpty { return e }
        let paths = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        guard let exe = paths.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw NSError(domain: "hammer-tests", code: 1,
                          userInfo: [NSLocalizedDescriptionKey: "redis-server is not installed (apt-get install redis-server)"])
        }
        return exe
    }

    /// DEBUG (SpinTests' DEBUG SLEEP) must be enabled from Redis 7.0 on (and on Valkey); 6.2 allows it and has no
    /// such option. The version is read from `--version` ("Redis server v=6.2.14 ...").
    static func debugArguments(_ exe: String) -> [String] {
        let p = Process()
        let out = Pipe()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["--version"]
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return [] }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if text.hasPrefix("Redis server v="),
           let major = Int(text.dropFirst("Redis server v=".count).prefix(while: { $0.isNumber })), major < 7 {
            return []
        }
        return ["--enable-debug-command", "local"]
    }

    private func waitForAOFRewrite() {
        for _ in 0..<500 {
            let info = cli(["INFO", "persistence"])
            if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
                && info.contains("loading:0") { return }
            usleep(10_000)
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    func url(_ opts: String = "expiry_ms=60000") -> String { "redis://127.0.0.1:\(port)/?\(opts)" }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    static func canConnect(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let r = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return r == 0
    }
}
