import FileSystemBlobs
import Foundation
import Testing

/// One server a data directory: a second `serve` on it refuses to start, names the holder and changes
/// nothing; once the first is gone (even by SIGKILL) the directory can be served again.
@Suite struct DataDirectoryLockTests {
    @Test func aSecondServerOnTheSameDataDirectoryIsRefusedUntilTheFirstIsGone() throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        let first = try ServerProcess(data: data)
        defer { first.kill() }
        let before = try snapshot(data)

        let second = try CommandProcess(["serve", "--port", "0", "--data", data.path])
        try waitUntil("the second server exits", timeout: 30) { !second.isRunning }
        let refused = try second.wait()
        #expect(refused.status != 0, "\(refused)")
        #expect(
            refused.stderr.contains("in use by another modelreg server")
                && refused.stderr.contains("pid \(first.process.processIdentifier)"),
            "the error names the holder: \(refused)")
        #expect(try snapshot(data).keys.sorted() == before.keys.sorted(), "the refused server touched nothing")
        #expect(try httpStatus(first.url + "/health/ready") == 200, "the first server keeps serving")

        first.kill()
        let next = try ServerProcess(data: data)
        #expect(try httpStatus(next.url + "/health/ready") == 200, "the lock of a killed server is released")
        next.stop()
    }
}
