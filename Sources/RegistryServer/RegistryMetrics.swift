import Prometheus
import Synchronization

/// The registry's Prometheus metrics. Each registry has its own collector registry, so several servers in
/// one process (as in tests) never share counters.
final class RegistryMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    // Descriptors are not Sendable, so they are built where used rather than stored.
    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "modelreg", metricName: metric, unitName: unit, helpText: help)
    }

    private static var requests: MetricNameDescriptor {
        name("http_requests", "total", "HTTP requests by method, route and status.")
    }
    private static var duration: MetricNameDescriptor {
        name("http_request_duration", "seconds", "HTTP request handling time until the response head.")
    }
    private static var received: MetricNameDescriptor {
        name("blob_bytes_received", "total", "Blob bytes received in uploads.")
    }
    private static var sent: MetricNameDescriptor { name("blob_bytes_sent", "total", "Blob bytes sent in downloads.") }
    private static var redirected: MetricNameDescriptor {
        name("blob_redirects", "total", "Blob downloads redirected to the object store.")
    }
    private static var committed: MetricNameDescriptor {
        name("blobs_committed", "total", "Uploads committed as blobs; deduplicated when the blob existed.")
    }
    private static var mismatches: MetricNameDescriptor {
        name("digest_mismatches", "total", "Uploads refused because their bytes did not hash to the expected digest.")
    }

    private static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
    ]

    /// The metrics of a request's labels, found once: asking the collector registry builds their names and
    /// labels again, a cost every request paid.
    private struct RequestLabels: Hashable {
        let method: String
        let route: String
        let status: Int
    }
    private let requestMetrics = Mutex<[RequestLabels: (Counter, DurationHistogram)]>([:])

    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let labels = RequestLabels(method: method, route: route, status: status)
        let (counter, histogram) = requestMetrics.withLock { known in
            if let metrics = known[labels] { return metrics }
            let metrics = (
                registry.makeCounter(
                    descriptor: Self.requests,
                    labels: [("method", method), ("route", route), ("status", String(status))]),
                registry.makeDurationHistogram(
                    descriptor: Self.duration, labels: [("method", method), ("route", route)],
                    buckets: Self.durationBuckets)
            )
            known[labels] = metrics
            return metrics
        }
        counter.increment()
        histogram.record(duration)
    }

    func blobBytesReceived(_ count: Int) {
        registry.makeCounter(descriptor: Self.received).increment(by: Int64(count))
    }

    func blobBytesSent(_ count: Int) {
        registry.makeCounter(descriptor: Self.sent).increment(by: Int64(count))
    }

    func blobRedirected() {
        registry.makeCounter(descriptor: Self.redirected).increment()
    }

    func blobCommitted(deduplicated: Bool) {
        registry.makeCounter(descriptor: Self.committed, labels: [("deduplicated", String(deduplicated))]).increment()
    }

    func digestMismatch() {
        registry.makeCounter(descriptor: Self.mismatches).increment()
    }

    private static var collected: MetricNameDescriptor {
        name("gc_deleted_blobs", "total", "Blobs deleted by garbage collection.")
    }
    private static var freed: MetricNameDescriptor {
        name("gc_freed_bytes", "total", "Bytes freed by garbage collection.")
    }
    private static var corrupt: MetricNameDescriptor {
        name(
            "corrupt_blobs_found", "total",
            "Corrupt blobs found and quarantined by integrity scrubs run by this server.")
    }
    private static var quarantined: MetricNameDescriptor {
        name("quarantined_blobs", "", "Blobs in quarantine now (found corrupt by any scrub; repair restores them).")
    }

    func garbageCollected(blobs: Int, bytes: Int64) {
        registry.makeCounter(descriptor: Self.collected).increment(by: Int64(blobs))
        registry.makeCounter(descriptor: Self.freed).increment(by: bytes)
    }

    func corruptBlobsFound(_ count: Int) {
        registry.makeCounter(descriptor: Self.corrupt).increment(by: Int64(count))
    }

    func quarantinedBlobs(_ count: Int) {
        registry.makeGauge(descriptor: Self.quarantined).set(Double(count))
    }

    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
