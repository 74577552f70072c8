import Synchronization

/// How fast this server has been sending blobs: the throughput of its last downloads big enough to measure the
/// link rather than the round trip. `modelreg k8s render --fetch-speed measured` sizes a pod's fetch timeout
/// and startup budget from it. Each replica measures what it sent itself; redirected downloads are the object
/// store's and not measured.
final class DownloadSpeeds: Sendable {
    /// A download shorter than this says more about latency than about bandwidth.
    static let minimumBytes: Int64 = 16 << 20
    /// The downloads kept: the median of the latest, so one slow client does not move it.
    static let window = 64

    private let samples = Mutex<[Int64]>([])

    func record(bytes: Int64, duration: Duration) {
        let seconds = duration / .seconds(1)
        guard bytes >= Self.minimumBytes, seconds > 0 else { return }
        let speed = Int64(Double(bytes) / seconds)
        samples.withLock { samples in
            samples.append(speed)
            if samples.count > Self.window { samples.removeFirst(samples.count - Self.window) }
        }
    }

    /// The lower median of the kept downloads' speeds in bytes a second, and how many there are.
    var median: (bytesPerSecond: Int64?, samples: Int) {
        let sorted = samples.withLock { $0 }.sorted()
        return (sorted.isEmpty ? nil : sorted[(sorted.count - 1) / 2], sorted.count)
    }
}
