import Foundation
import Logging
import ModelRegistryCore
import ServiceLifecycle

/// Removes uploads that received no byte for the upload TTL: a client that was killed and never came back
/// would otherwise leave its partial bytes on disk forever. Runs at start and then every `interval`.
struct UploadSweeper: Service {
    let blobs: any BlobStore
    let ttl: Duration
    let logger: Logger

    /// Often enough that an upload outlives its TTL by at most a quarter of it (or 15 minutes).
    var interval: Duration { max(.seconds(1), min(ttl / 4, .seconds(15 * 60))) }

    func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            await sweep(now: Date())
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    func sweep(now: Date) async {
        let cutoff = now.addingTimeInterval(-Double(ttl.components.seconds) - Double(ttl.components.attoseconds) / 1e18)
        do {
            let removed = try await blobs.removeStaleUploads(untouchedSince: cutoff)
            if !removed.isEmpty {
                logger.notice("removed stale uploads", metadata: ["count": "\(removed.count)", "ttl": "\(ttl)"])
            }
        } catch {
            logger.error("sweeping stale uploads failed", metadata: ["error": "\(error)"])
        }
    }
}
