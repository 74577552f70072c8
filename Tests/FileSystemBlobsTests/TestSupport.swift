import Foundation
import ModelRegistryCore
import NIOCore

/// A fresh directory under the system temp dir, removed when the test's closure returns.
func withTemporaryDirectory<T>(_ body: (URL) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-fs-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

/// Buffers as the async sequence a request body is.
func buffers(_ buffers: ByteBuffer...) -> AsyncStream<ByteBuffer> {
    AsyncStream { continuation in
        for buffer in buffers { continuation.yield(buffer) }
        continuation.finish()
    }
}

func files(in directory: URL) -> [String] {
    (FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String] ?? []).sorted()
}

/// Runs the jobs of the tasks that prefer it on a dispatch queue of its own, apart from the cooperative pool.
final class QueueExecutor: TaskExecutor {
    private let queue = DispatchQueue(label: "modelreg-test-executor")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
