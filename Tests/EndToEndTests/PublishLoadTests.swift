import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import TestServers
import Testing

/// Issue 16.9: publishing re-reads every weight file's header, and a large one is costly to parse. Six
/// publishes of a variant with a ~5 MB safetensors header at once must not keep the server from answering
/// its readiness probe (whose timeout in deploy/ is 1 s). The publishes themselves may be slow on a busy
/// machine (a debug build parses them): only readiness is bounded.
@Suite(.serialized) struct PublishLoadTests {
    /// A safetensors file of `count` one-byte tensors: a header of about 60 bytes a tensor.
    static func manyTensors(_ count: Int) -> Data {
        var header = "{"
        header.reserveCapacity(count * 64)
        for index in 0..<count {
            if index > 0 { header += "," }
            header += #""model.layers.\#(index).w":{"dtype":"U8","shape":[1],"data_offsets":[\#(index),\#(index + 1)]}"#
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var bytes = Data()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(Data(repeating: 1, count: count))
        return bytes
    }

    @Test func readinessIsAnsweredWhilePublishesParseLargeHeaders() async throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.stop() }
        let model = scratch.url("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try Self.manyTensors(80_000).write(to: model.appendingPathComponent("model.safetensors"))
        try Data(#"{"model_type":"llama","architectures":["LlamaForCausalLM"]}"#.utf8).write(
            to: model.appendingPathComponent("config.json"))
        let push = try modelreg(["push", model.path, "big:1"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        let http = RawHTTP(server: server)
        let manifest = try await http.send(.GET, "/v1/models/big/manifests/:1")
        try #require(
            manifest.status == 200 && manifest.body.contains("metadata"),
            "an inspected manifest, so publishing re-reads the header")

        // The kubelet's probe, as a process of its own: curl times each answer itself, so a busy test
        // process cannot add its own delays to the figure.
        let probes = scratch.url("probes")
        let prober = Process()
        prober.executableURL = URL(fileURLWithPath: "/bin/sh")
        prober.arguments = [
            "-c",
            "while :; do curl -s -o /dev/null -w '%{http_code} %{time_total}\\n' \(server.url)/health/ready >> '\(probes.path)'; sleep 0.05; done",
        ]
        try prober.runAlone()
        let publishing = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for version in 2...7 {
                group.addTask {
                    let published = try await http.send(
                        .PUT, "/v1/models/big/versions/\(version)/variants/default", body: Array(manifest.body.utf8),
                        timeout: .minutes(5)
                    )
                    #expect(published.status == 201, "\(published)")
                }
            }
            try await group.waitForAll()
        }
        let period = (ContinuousClock.now - publishing).seconds
        prober.terminate()
        prober.waitUntilExit()
        let answers = try String(contentsOf: probes, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: " ")
        }
        #expect(answers.count >= 3 && answers.allSatisfy { $0.first == "200" }, "\(answers)")
        let seconds = try #require(answers.compactMap { $0.last.flatMap { Double($0) } }.max())
        // The probe's 1 s, or a third of the time the publishes took on a busy machine, whichever is longer.
        // While the parses held the request threads, the slowest answer took most of that time (7.6 s of
        // 12, run alone).
        #expect(
            seconds < max(1, period / 3),
            "the slowest readiness answer took \(seconds) s of the \(period) s six large headers were parsed in")
        print(
            "publish load: slowest readiness answer \(String(format: "%.3f", seconds)) s while six publishes of a 5 MB header took \(String(format: "%.1f", period)) s"
        )
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
