import Prometheus

/// The registry's Prometheus metrics. Each registry has its own collector registry, so several servers in
/// one process (as in tests) never share counters.
final class RegistryMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    private static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30),
    ]

    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let labels = [("method", method), ("route", route), ("status", String(status))]
        registry.makeCounter(name: "modelreg_http_requests_total", labels: labels).increment()
        registry.makeDurationHistogram(
            name: "modelreg_http_request_duration_seconds",
            labels: [("method", method), ("route", route)],
            buckets: Self.durationBuckets
        ).record(duration)
    }

    func blobBytesReceived(_ count: Int) {
        registry.makeCounter(name: "modelreg_blob_bytes_received_total").increment(by: Int64(count))
    }

    func blobBytesSent(_ count: Int) {
        registry.makeCounter(name: "modelreg_blob_bytes_sent_total").increment(by: Int64(count))
    }

    func blobCommitted(deduplicated: Bool) {
        registry.makeCounter(name: "modelreg_blobs_committed_total", labels: [("deduplicated", String(deduplicated))]).increment()
    }

    func digestMismatch() {
        registry.makeCounter(name: "modelreg_digest_mismatches_total").increment()
    }

    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
