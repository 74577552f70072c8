import Testing

@testable import RegistryServer

/// The median `k8s render --fetch-speed measured` reads: large downloads only, the latest 64, the lower median.
@Suite struct DownloadSpeedsTests {
    @Test func theMedianIsOfTheLatestLargeDownloads() {
        let speeds = DownloadSpeeds()
        #expect(speeds.median.bytesPerSecond == nil && speeds.median.samples == 0)
        speeds.record(bytes: DownloadSpeeds.minimumBytes - 1, duration: .seconds(1))
        speeds.record(bytes: DownloadSpeeds.minimumBytes, duration: .zero)
        #expect(speeds.median.samples == 0, "a small or instant download measures nothing")

        let mib = Int64(1 << 20)
        for seconds in [4, 1, 2, 8] { speeds.record(bytes: 64 * mib, duration: .seconds(seconds)) }
        #expect(speeds.median.bytesPerSecond == 16 * mib && speeds.median.samples == 4)
        speeds.record(bytes: 64 * mib, duration: .milliseconds(500))
        #expect(speeds.median.bytesPerSecond == 32 * mib && speeds.median.samples == 5)

        for _ in 0..<DownloadSpeeds.window { speeds.record(bytes: 32 * mib, duration: .seconds(1)) }
        #expect(speeds.median.bytesPerSecond == 32 * mib && speeds.median.samples == DownloadSpeeds.window)
    }
}
