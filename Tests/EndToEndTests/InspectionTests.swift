import Foundation
import ModelRegistryCore
import RegistryAPI
import Testing

struct ResolvedManifestJSON: Decodable {
    var variant: String
    var digest: String
    var manifest: Manifest
}

struct VariantListingJSON: Decodable {
    struct Variant: Decodable {
        struct Estimate: Decodable {
            var totalBytes: Int64
            var kvCacheBytes: Int64?
        }
        var name: String
        var quantization: Quantization?
        var estimate: Estimate?
        var fits: Bool?
    }
    var variants: [Variant]
    var chosen: String?
}

/// Inspection through the real binary: push reads the headers, the server checks them again, and show,
/// variants and pull --fit use what was found.
@Suite(.serialized) struct InspectionTests {
    /// TestModel's fp16 weights: embeddings and head (2 × 128 × 64), two layers of four 64 × 64 projections
    /// and a 64-wide norm.
    static let fp16Parameters: Int64 = 2 * 128 * 64 + 2 * (4 * 64 * 64 + 64)

    /// An AWQ 4-bit checkpoint of the same shape: packed projections with their scales and zeros.
    static func writeAWQ(to root: URL) throws {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var tensors = [TestModel.Tensor(name: "model.embed_tokens.weight", dtype: "F16", shape: [128, 64])]
        for layer in 0..<2 {
            for projection in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                let prefix = "model.layers.\(layer).self_attn.\(projection)."
                tensors.append(TestModel.Tensor(name: prefix + "qweight", dtype: "I32", shape: [64, 8]))
                tensors.append(TestModel.Tensor(name: prefix + "qzeros", dtype: "I32", shape: [1, 8]))
                tensors.append(TestModel.Tensor(name: prefix + "scales", dtype: "F16", shape: [1, 64]))
            }
        }
        var generator = SplitMix(state: 9)
        try TestModel.safetensors(tensors, generator: &generator).write(
            to: root.appendingPathComponent("model.safetensors"))
        try TestModel.json([
            "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 4096, "torch_dtype": "float16",
            "quantization_config": ["quant_method": "awq", "bits": 4, "group_size": 64, "version": "gemm"],
        ]).write(to: root.appendingPathComponent("config.json"))
    }

    /// `modelreg plan` through the binary: the release's variants as the server holds them, vLLM's arguments
    /// for the one chosen, and one error line when nothing fits or the cache type is not vLLM's.
    @Test func planPrintsVLLMArguments() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        let fp16 = scratch.url("fp16")
        let awq = scratch.url("awq")
        try TestModel.write(to: fp16)
        try Self.writeAWQ(to: awq)
        try Data(
            #"{"arguments": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"], "environment": {"VLLM_LOGGING_LEVEL": "DEBUG"}}"#
                .utf8
        ).write(to: fp16.appendingPathComponent("modelreg-serving.json"))
        // A profile that sets what the plan chooses is refused at push, before any byte is sent.
        let bad = scratch.url("bad")
        try TestModel.write(to: bad)
        try Data(#"{"arguments": ["--max-model-len", "9999"]}"#.utf8).write(
            to: bad.appendingPathComponent("modelreg-serving.json"))
        let refused = try modelreg(["push", bad.path, "tiny:bad"], environment: env)
        #expect(
            refused.status == 65
                && refused.stderr.contains(
                    "error: invalid model file modelreg-serving.json: arguments set --max-model-len"),
            "\(refused)")
        for (directory, variant) in [(fp16, "fp16"), (awq, "awq-int4")] {
            let push = try modelreg(["push", directory.path, "tiny:1.0", "--variant", variant], environment: env)
            try #require(push.status == 0, "\(push)")
        }
        try #require(
            try modelreg(["alias", "set", "tiny", "prod", "1.0", "--variant", "fp16"], environment: env).status == 0)

        struct PlanJSON: Decodable {
            struct Choice: Decodable {
                let flag: String
                let value: String?
            }
            let variant: String
            let maxModelLen: Int64
            let choices: [Choice]
        }
        let json = try modelreg(["plan", "tiny@prod", "--gpu-memory", "2GiB", "--json"], environment: env)
        try #require(json.status == 0, "\(json)")
        let plan = try json.json(PlanJSON.self)
        #expect(plan.variant == "fp16" && plan.maxModelLen == 4096)
        #expect(
            plan.choices.flatMap { [$0.flag] + ($0.value.map { [$0] } ?? []) } == [
                "--model", "/models", "--served-model-name", "tiny", "--tensor-parallel-size", "1",
                "--max-model-len", "4096", "--dtype", "float16", "--kv-cache-dtype", "auto",
                "--gpu-memory-utilization", "0.9", "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
            ])
        let show = try modelreg(["show", "tiny@prod"], environment: env)
        #expect(show.stdout.contains("serving profile (modelreg-serving.json):"), "\(show)")
        #expect(show.stdout.contains("environment: VLLM_LOGGING_LEVEL=DEBUG"), "\(show)")
        let text = try modelreg(
            ["plan", "tiny:1.0", "--gpu-memory", "2GiB", "--kv-cache-dtype", "fp8"], environment: env)
        #expect(text.status == 0, "\(text)")
        #expect(text.stdout.contains("vllm serve --model /models --served-model-name tiny"), "\(text)")
        #expect(text.stdout.contains("--kv-cache-dtype fp8") && text.stdout.contains("awq-int4 ("), "\(text)")

        // The manifests that serve the plan pin the variant's digest; kubernetes-validate takes them.
        let digest = try modelreg(["show", "tiny@prod", "--json"], environment: env).json(ResolvedManifestJSON.self)
            .digest
        let render = try modelreg(
            ["k8s", "render", "tiny@prod", "--gpu-memory", "2GiB", "--replicas", "2", "--track", "canary"],
            environment: env)
        try #require(render.status == 0, "\(render)")
        #expect(render.stdout.contains("- \"tiny@\(digest)\"") && render.stdout.contains("name: \"vllm-tiny-canary\""))
        let rendered = scratch.url("rendered.yaml")
        try Data(render.stdout.utf8).write(to: rendered)
        let validation = try CommandProcess(
            ["kubernetes-validate", "--strict", rendered.path], executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        #expect(validation.status == 0, "\(validation)")
        // Both tracks in one set, each pod fetching what its alias names when it starts: one Service.
        try #require(
            try modelreg(["alias", "set", "tiny", "canary", "1.0", "--variant", "awq-int4"], environment: env).status
                == 0)
        let tracks = try modelreg(
            [
                "k8s", "render", "tiny@prod", "--gpu-memory", "2GiB", "--replicas", "3", "--follow-alias", "--canary",
                "tiny@canary",
            ], environment: env)
        try #require(tracks.status == 0, "\(tracks)")
        for expected in [
            "- \"tiny@prod\"\n", "- \"tiny@canary\"\n", "- \"--variant\"\n", "- \"awq-int4\"\n",
            "name: \"vllm-tiny-stable\"",
            "name: \"vllm-tiny-canary\"", "# canary: 1 replica of tiny@canary, variant awq-int4",
        ] {
            #expect(tracks.stdout.contains(expected), "\(expected) missing from \(tracks.stdout)")
        }
        #expect(
            tracks.stdout.components(separatedBy: "kind: \"Service\"").count == 2
                && !tracks.stdout.contains("manifest-digest"), "\(tracks.stdout)")
        try Data(tracks.stdout.utf8).write(to: rendered)
        let tracksValidation = try CommandProcess(
            ["kubernetes-validate", "--strict", rendered.path], executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        #expect(tracksValidation.status == 0, "\(tracksValidation)")
        for (arguments, message) in [
            (["--follow-alias"], "--follow-alias needs NAME@ALIAS, not 'tiny:1.0'"),
            (["--canary", "other@canary"], "--canary must name a release of tiny"),
            (["--canary", "tiny@canary", "--track", "canary"], "leave out --track"),
        ] {
            let refused = try modelreg(
                ["k8s", "render", "tiny:1.0", "--gpu-memory", "2GiB"] + arguments, environment: env)
            #expect(refused.status == 64 && refused.stderr.contains(message), "\(refused)")
        }
        let noWarmup = try modelreg(
            ["k8s", "render", "tiny@prod", "--gpu-memory", "2GiB", "--warmup"], environment: env)
        #expect(noWarmup.status == 64 && noWarmup.stderr.contains("--warmup needs a warm-up request"), "\(noWarmup)")

        // 0.9 of 1 GiB is less than the 1 GiB of overhead alone: nothing fits, and the error says what each lacks.
        let none = try modelreg(["plan", "tiny:1.0", "--gpu-memory", "1GiB"], environment: env)
        #expect(none.status == 3, "\(none)")
        #expect(
            none.stderr.hasPrefix("error: no variant of tiny:1.0 can be served")
                && none.stderr.contains("fp16: at 4 GPUs it leaves room for 0 tokens")
                && none.stderr.split(separator: "\n").count == 1,
            "\(none)")
        let fp16Cache = try modelreg(
            ["plan", "tiny:1.0", "--gpu-memory", "2GiB", "--kv-cache-dtype", "fp16"], environment: env)
        #expect(fp16Cache.status == 64 && fp16Cache.stderr.contains("auto (the model's dtype) or fp8"), "\(fp16Cache)")
    }

    /// `k8s render` sizes its budgets from the downloads the registry served: none yet, the stated default; after
    /// a pull of a 20 MiB file, the measured median rounded down to a power of two MiB/s, said on standard error.
    @Test func renderBudgetsFollowTheMeasuredFetchSpeed() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        try random.readData(ofLength: 20 << 20).write(to: model.appendingPathComponent("extra.bin"))
        try #require(try modelreg(["push", model.path, "tiny:1.0"], environment: env).status == 0)
        let render = ["k8s", "render", "tiny:1.0", "--gpu-memory", "2GiB"]

        let unmeasured = try modelreg(render, environment: env)
        #expect(unmeasured.status == 0 && unmeasured.stderr.contains("budgets assume 100MiB/s"), "\(unmeasured)")
        #expect(unmeasured.stdout.contains("# Budgets assume the fetch gets 100 MiB/s"), "\(unmeasured)")

        let pull = try modelreg(["pull", "tiny:1.0", "--dest", scratch.url("pulled").path], environment: env)
        try #require(pull.status == 0, "\(pull)")
        let stats = try CommandProcess(
            ["curl", "-sf", "-H", "Authorization: Bearer \(server.adminToken)", server.url + "/v1/stats/downloads"],
            executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        let speed = try JSONDecoder().decode(DownloadSpeed.self, from: Data(stats.stdout.utf8))
        let median = try #require(speed.medianBytesPerSecond, "\(stats)")
        #expect(speed.samples == 1 && median > 0, "\(stats)")
        var expected: Int64 = 1 << 20
        while expected * 2 <= median { expected *= 2 }
        let measured = try modelreg(render, environment: env)
        #expect(
            measured.status == 0 && measured.stderr.contains("over 1 downloads), rounded down to a power of two"),
            "\(measured)")
        #expect(
            measured.stdout.contains("# Budgets assume the fetch gets \(ByteCount.format(expected, digits: 0))/s"),
            "\(measured)")
        let fixed = try modelreg(render + ["--fetch-speed", "1MiB/s"], environment: env)
        #expect(fixed.status == 0 && fixed.stdout.contains("gets 1 MiB/s") && fixed.stderr.isEmpty, "\(fixed)")
        server.stop()
    }

    @Test func showVariantsAndPullFit() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        let fp16 = scratch.url("fp16")
        let awq = scratch.url("awq")
        try TestModel.write(to: fp16, shards: 2)
        try Self.writeAWQ(to: awq)
        #expect(try modelreg(["push", fp16.path, "tiny:1.0", "--variant", "fp16"], environment: env).status == 0)
        let pushAWQ = try modelreg(
            ["push", awq.path, "tiny:1.0", "--variant", "awq-int4", "--derived-from", "fp16"], environment: env)
        try #require(pushAWQ.status == 0, "\(pushAWQ)")

        let show = try modelreg(["show", "tiny:1.0", "--variant", "fp16"], environment: env)
        #expect(show.status == 0)
        #expect(show.stdout.contains("parameters: 49.3K (\(Self.fp16Parameters))"), "\(show)")
        #expect(
            show.stdout.contains("architecture: LlamaForCausalLM") && show.stdout.contains("KV cache: 256 B a token"),
            "\(show)")
        #expect(show.stdout.contains("GPU memory: "), "\(show)")
        let fp16Manifest = try modelreg(["show", "tiny:1.0", "--variant", "fp16", "--json"], environment: env).json(
            ResolvedManifestJSON.self
        ).manifest
        let metadata = try #require(fp16Manifest.metadata)
        #expect(
            metadata.parameterCount == Self.fp16Parameters && metadata.layers == 2 && metadata.kvHeads == 2
                && metadata.headDim == 16)
        #expect(metadata.weightFiles.count == 2 && metadata.dtypeBytes["BF16"] == 2 * 4 * 64 * 64 * 2)
        #expect(fp16Manifest.quantization == nil)

        let awqManifest = try modelreg(["show", "tiny:1.0", "--variant", "awq-int4", "--json"], environment: env).json(
            ResolvedManifestJSON.self
        ).manifest
        #expect(
            awqManifest.quantization
                == Quantization(method: "awq", bits: 4, groupSize: 64, derivedFrom: try VariantName("fp16")))
        #expect(awqManifest.metadata?.parameterCount == Int64(128 * 64 + 8 * 64 * 64))

        let variants = try modelreg(["variants", "tiny:1.0"], environment: env)
        #expect(variants.status == 0 && variants.stdout.contains("awq 4-bit g64 (from fp16)"), "\(variants)")
        let listing = try modelreg(["variants", "tiny:1.0", "--json"], environment: env).json(VariantListingJSON.self)
        #expect(listing.variants.map(\.name) == ["awq-int4", "fp16"])
        let needs = Dictionary(uniqueKeysWithValues: listing.variants.map { ($0.name, $0.estimate?.totalBytes ?? 0) })
        let fp16Need = try #require(needs["fp16"])
        let awqNeed = try #require(needs["awq-int4"])
        #expect(fp16Need > awqNeed)
        // An fp8 KV cache, as `vllm --kv-cache-dtype fp8` keeps it: half the cache of the fp16 model.
        let fp8 = try modelreg(["variants", "tiny:1.0", "--kv-cache-dtype", "fp8", "--json"], environment: env).json(
            VariantListingJSON.self)
        let cache = listing.variants.first { $0.name == "fp16" }?.estimate?.kvCacheBytes
        let fp8Cache = fp8.variants.first { $0.name == "fp16" }?.estimate?.kvCacheBytes
        #expect(cache != nil && fp8Cache.map { $0 * 2 } == cache)
        #expect(try modelreg(["variants", "tiny:1.0", "--kv-cache-dtype", "int3"], environment: env).status == 64)
        // --fit marks what a budget holds and what `pull --fit` takes: here the AWQ variant alone.
        let marked = try modelreg(["variants", "tiny:1.0", "--fit", String(awqNeed), "--json"], environment: env)
            .json(VariantListingJSON.self)
        #expect(marked.variants.map(\.fits) == [true, false] && marked.chosen == "awq-int4")
        let markedText = try modelreg(["variants", "tiny:1.0", "--fit", String(awqNeed)], environment: env).stdout
        #expect(markedText.contains("FITS") && markedText.contains("yes (--fit takes it)"), "\(markedText)")
        #expect(try modelreg(["variants", "tiny:1.0", "--fit", "lots"], environment: env).status != 0)

        // Room for both: the higher precision wins, and the choice is explained.
        let roomy = try modelreg(
            ["pull", "tiny:1.0", "--fit", "24GiB", "--dest", scratch.url("roomy").path, "--json"], environment: env)
        try #require(roomy.status == 0, "\(roomy)")
        #expect(try roomy.json(PullReportJSON.self).variant == "fp16")
        #expect(roomy.stderr.contains("chose variant fp16 of tiny:1.0"), "\(roomy)")
        // Room for the AWQ variant only.
        let tight = try modelreg(
            ["pull", "tiny:1.0", "--fit", String(awqNeed), "--dest", scratch.url("tight").path, "--json"],
            environment: env)
        try #require(tight.status == 0, "\(tight)")
        #expect(try tight.json(PullReportJSON.self).variant == "awq-int4")
        #expect(tight.stderr.contains("higher precision does not fit: fp16 needs"), "\(tight)")
        // One byte short of fp16: the message shows the digits that make the difference (issue 15.6).
        let short = try modelreg(
            ["pull", "tiny:1.0", "--fit", String(fp16Need - 1), "--dest", scratch.url("short").path], environment: env)
        try #require(short.status == 0, "\(short)")
        let line = try #require(
            short.stderr.split(separator: "\n").first { $0.contains("higher precision does not fit") }
        ).description
        let budget = line.components(separatedBy: " for ").dropFirst().first?.components(separatedBy: ":").first
        let need = line.components(separatedBy: "fp16 needs ").dropFirst().first?.components(separatedBy: ",").first
        #expect(budget != nil && need != nil && budget != need, "\(line)")
        // Room for nothing: an error listing what each needs, and nothing written.
        let none = try modelreg(
            ["pull", "tiny:1.0", "--fit", "1GiB", "--dest", scratch.url("none").path], environment: env)
        #expect(none.status == 3, "\(none)")
        #expect(
            none.stderr.contains("no variant of tiny:1.0 fits in 1.0 GiB: fp16 needs")
                && none.stderr.contains("awq-int4 needs"), "\(none)")
        #expect(!FileManager.default.fileExists(atPath: scratch.url("none").path))
        // An explicit --variant always wins.
        let explicit = try modelreg(
            ["pull", "tiny:1.0", "--variant", "fp16", "--fit", "1GiB", "--dest", scratch.url("explicit").path],
            environment: env)
        #expect(explicit.status == 0, "\(explicit)")
        let badSize = try modelreg(
            ["pull", "tiny:1.0", "--fit", "lots", "--dest", scratch.url("bad").path], environment: env)
        #expect(badSize.status == 64 && badSize.stderr.contains("invalid size 'lots'"), "\(badSize)")
        server.stop()
    }

    @Test func corruptFilesAndContradictionsAreRefused() async throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let weights = model.appendingPathComponent("model.safetensors")
        let good = try Data(contentsOf: weights)

        // A header length of 2^60: refused before any byte is sent, naming the file and the problem.
        var corrupt = good
        corrupt.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 60).littleEndian, Array.init))
        try corrupt.write(to: weights)
        let refused = try modelreg(["push", model.path, "m:1"], environment: env)
        #expect(
            refused.status == 65 && refused.stderr.contains("model.safetensors")
                && refused.stderr.contains("past the end"), "\(refused)")
        #expect(try modelreg(["ls", "--json"], environment: env).json(ModelList.self).models.isEmpty)

        // --no-inspect pushes the same bytes as opaque files.
        let opaque = try modelreg(["push", model.path, "m:1", "--no-inspect", "--json"], environment: env)
        try #require(opaque.status == 0, "\(opaque)")
        let shown = try modelreg(["show", "m:1", "--variant", "default", "--json"], environment: env).json(
            ResolvedManifestJSON.self
        ).manifest
        #expect(shown.metadata == nil && shown.quantization == nil)

        // Declaring a quantization over fp16 files is refused by the client...
        try good.write(to: weights)
        let contradiction = try modelreg(
            ["push", model.path, "m:2", "--quantization", "awq", "--bits", "4"], environment: env)
        #expect(contradiction.status == 65 && contradiction.stderr.contains("contradicts"), "\(contradiction)")
        let stray = try modelreg(["push", model.path, "m:2", "--bits", "4"], environment: env)
        #expect(stray.status == 64, "\(stray)")

        // ...and by the server, which re-reads the stored headers, whatever a client sends.
        #expect(try modelreg(["push", model.path, "m:3", "--json"], environment: env).status == 0)
        let published = try modelreg(["show", "m:3", "--variant", "default", "--json"], environment: env).json(
            ResolvedManifestJSON.self
        ).manifest
        let http = RawHTTP(server: server)
        var forged = published
        forged.metadata?.parameterCount = 7_000_000_000
        let forgedMetadata = try await http.send(
            .PUT, "/v1/models/m/versions/4/variants/default", body: forged.canonicalJSON())
        #expect(
            forgedMetadata.status == 400 && errorCode(forgedMetadata.body) == "INVALID_MANIFEST", "\(forgedMetadata)")
        #expect(
            forgedMetadata.body.contains("parameterCount: declared 7000000000, files say 49280"), "\(forgedMetadata)")
        var quantized = published
        quantized.quantization = Quantization(method: "gptq", bits: 4)
        let forgedQuantization = try await http.send(
            .PUT, "/v1/models/m/versions/4/variants/default", body: quantized.canonicalJSON())
        #expect(
            forgedQuantization.status == 400 && errorCode(forgedQuantization.body) == "INVALID_MANIFEST",
            "\(forgedQuantization)")
        // The corrupt blob stored by the opaque push cannot be described as a model.
        var described = shown
        described.metadata = published.metadata
        let corruptDescribed = try await http.send(
            .PUT, "/v1/models/m/versions/4/variants/default", body: described.canonicalJSON())
        #expect(
            corruptDescribed.status == 400 && errorCode(corruptDescribed.body) == "INVALID_MODEL_FILE",
            "\(corruptDescribed)")
        #expect(corruptDescribed.body.contains("model.safetensors"), "\(corruptDescribed)")
        server.stop()
    }
}
