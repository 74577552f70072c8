import Foundation
import TestServers

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a shell command to completion; its standard output and error together.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command + " 2>&1"]
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-shell-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    process.standardOutput = try FileHandle(forWritingTo: output)
    try process.runAlone()
    process.waitUntilExit()
    return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
}

/// A tmpfs of a fixed size mounted on a directory: a disk that fills up for real, in milliseconds.
final class TmpfsMount {
    let directory: URL
    private var mounted = true

    init(at directory: URL, size: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let result = try shell("mount -t tmpfs -o size=\(size),mode=0755 tmpfs '\(directory.path)'")
        guard result.status == 0 else { throw ServerError("mount -t tmpfs failed: \(result.output)") }
        self.directory = directory
    }

    /// Whether a tmpfs can be mounted here: root, and a mount(8) the container permits. Probed once.
    static let available: Bool = {
        guard geteuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent(
            "modelreg-tmpfs-probe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: probe) }
        guard let mount = try? TmpfsMount(at: probe, size: "64k") else { return false }
        mount.unmount()
        return true
    }()

    func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? shell("umount '\(directory.path)'")
    }

    deinit { unmount() }
}

/// Writes zeros into a file until the file system is full; returns the bytes written.
func fillDisk(_ file: URL) throws -> Int64 {
    let fd = open(file.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw ServerError("cannot create \(file.path)") }
    defer { close(fd) }
    let chunk = [UInt8](repeating: 0, count: 4096)
    var written: Int64 = 0
    while true {
        let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        if n <= 0 {
            guard errno == ENOSPC else { throw ServerError("filling \(file.path) failed: errno \(errno)") }
            return written
        }
        written += Int64(n)
    }
}

extension ServerProcess {
    var port: Int { URL(string: url)?.port ?? 0 }

    /// Sends SIGTERM, as the kubelet does, without waiting.
    func terminate() { process.terminate() }

    /// Waits for the process to end, at most `timeout`; its exit status, or nil if it is still running.
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }
}

/// A plain HTTP GET with curl: its status code, or 0 when no answer came.
func httpStatus(_ url: String, headers: [String] = []) throws -> Int {
    let flags = headers.map { "-H '\($0)'" }.joined(separator: " ")
    let result = try shell("curl -s -o /dev/null -w '%{http_code}' --max-time 10 \(flags) '\(url)'")
    return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}
