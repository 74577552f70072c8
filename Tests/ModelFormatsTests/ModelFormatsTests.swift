import ModelFormats
import Testing

@Test func moduleLoads() {
    _ = ModelFormats.self
}
