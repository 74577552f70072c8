import Foundation
import KubernetesManifests
import ModelFormats
import ModelRegistryCore
import ServingPlan
import TestServers
import Testing

/// The manifests `modelreg k8s render` prints, from a plan of Qwen2-7B's shape (BF16, 15,231,233,024 bytes of
/// weights): valid Kubernetes (`kubernetes-validate --strict`, installed by .ci/test), and what the plan says.
@Suite struct KubernetesManifestsTests {
    static func plan(
        gpuMemory: Int64, gpus: Int, profile: ServingProfile? = nil, model: String = "org/qwen2-7b",
        version: String = "1.2"
    ) throws -> ServingPlan {
        let metadata = ModelMetadata(
            architecture: "Qwen2ForCausalLM", parameterCount: 7_615_616_512, dtypeBytes: ["BF16": 15_231_233_024],
            weightBytes: 15_231_233_024, torchDtype: "bfloat16", contextLength: 32768, layers: 28, hiddenSize: 3584,
            attentionHeads: 28, kvHeads: 4, headDim: 128, kvCacheBytesPerToken: 2 * 28 * 4 * 128 * 2,
            weightFiles: ["model.safetensors": "safetensors"])
        let plan = try ServingPlanner.plan(
            model: try ModelName(model), version: try VersionName(version),
            candidates: [(.default, Manifest(format: .safetensors, files: [], metadata: metadata))],
            budget: try GPUBudget(memoryBytes: gpuMemory << 30, maxGPUs: gpus), request: try ServingRequest())
        return profile.map(plan.including) ?? plan
    }

    static let digest = Digest.of(Array("a variant's manifest".utf8))

    /// Runs kubernetes-validate --strict over the documents.
    static func validate(_ yaml: String) throws -> (status: Int32, output: String) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("render-\(UUID().uuidString).yaml")
        try Data(yaml.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["kubernetes-validate", "--strict", file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.runAlone()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// Two 16 GiB GPUs: the plan takes both; everything the issue asks of the Deployment is there, and valid.
    @Test func aRenderedTrackIsValidKubernetes() throws {
        let profile = ServingProfile(
            vllmVersion: "0.6.3", arguments: ["--enable-prefix-caching"], environment: ["VLLM_LOGGING_LEVEL": "INFO"],
            warmup: ServingProfile.Warmup(path: "/v1/completions", body: #"{"max_tokens":1,"prompt":"Hi"}"#))
        let plan = try Self.plan(gpuMemory: 16, gpus: 2, profile: profile)
        #expect(plan.tensorParallelSize == 2)
        let deployment = try ServingDeployment(
            plan: plan, target: .pinned(Self.digest), modelBytes: 15_231_300_000, replicas: 3, track: .stable,
            gpuType: "NVIDIA-A10G", namespace: "serving", warmup: true, hpaQueueDepth: 10)
        let yaml = deployment.yaml()
        let validation = try Self.validate(yaml)
        #expect(validation.status == 0, "\(validation.output)\n\(yaml)")
        let expectations: [String] = [
            "kind: \"Service\"", "kind: \"Deployment\"", "kind: \"PodDisruptionBudget\"",
            "kind: \"HorizontalPodAutoscaler\"", "name: \"vllm-org-qwen2-7b-stable\"", "namespace: \"serving\"",
            "modelreg.dev/manifest-digest: \"\(Self.digest)\"", "- \"org/qwen2-7b@\(Self.digest)\"",
            "nvidia.com/gpu: \"2\"", "maxUnavailable: \"25%\"", "maxSurge: 1", "- \"NVIDIA-A10G\"",
            "topologyKey: \"kubernetes.io/hostname\"", "- \"--tensor-parallel-size\"\n",
            "- \"--enable-prefix-caching\"",
            "name: \"VLLM_LOGGING_LEVEL\"", "postStart:", "image: \"vllm/vllm-openai:v0.6.3\"",
            "name: \"vllm:num_requests_waiting\"", "averageValue: \"10\"", "minReplicas: 3", "maxReplicas: 6",
            "path: \"/health\"",
        ]
        for expected in expectations {
            #expect(yaml.contains(expected), "\(expected) missing from\n\(yaml)")
        }
    }

    /// The template changes exactly when the digest does: a re-render after an alias move rolls out, an
    /// unchanged one does not.
    @Test func theTemplateFollowsTheDigest() throws {
        let plan = try Self.plan(gpuMemory: 24, gpus: 1)
        func render(_ digest: Digest) throws -> String {
            try ServingDeployment(
                plan: plan, target: .pinned(digest), modelBytes: 15 << 30, replicas: 1, track: .canary
            ).yaml()
        }
        let first = try render(Self.digest)
        #expect(try render(Self.digest) == first)
        let moved = try render(Digest.of(Array("another".utf8)))
        #expect(moved != first && !moved.contains(Self.digest.description))
        #expect(try Self.validate(first).status == 0)
        #expect(!first.contains("HorizontalPodAutoscaler") && !first.contains("postStart"))
    }

    /// deploy/vllm.yaml is what the README's command prints for Qwen2-7B in BF16 (its weights, tokenizer and
    /// configs: 15,242,710,631 bytes) on 24 GiB GPUs, version 1 at `prod` and 2 at `canary`:
    /// `modelreg k8s render qwen2-7b@prod --gpu-memory 24GiB --replicas 3 --follow-alias --canary qwen2-7b@canary`.
    /// On a change, the message names a file holding the new rendering to copy over it.
    @Test func theSampleDeploymentIsRendered() throws {
        let modelBytes: Int64 = 15_242_710_631
        let tracks = try [("1", "prod", ServingDeployment.Track.stable, 3), ("2", "canary", .canary, 1)].map {
            version, alias, track, replicas in
            try ServingDeployment(
                plan: try Self.plan(gpuMemory: 24, gpus: 8, model: "qwen2-7b", version: version),
                target: .following(try AliasName(alias)), modelBytes: modelBytes, replicas: replicas, track: track)
        }
        #expect(tracks[0].plan.tensorParallelSize == 1 && tracks[0].plan.maxModelLen == 32768)
        let rendered = ServingDeployment.yaml(tracks)
        let sample = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("deploy/vllm.yaml")
        let written = try String(contentsOf: sample, encoding: .utf8)
        if rendered != written {
            let fresh = FileManager.default.temporaryDirectory.appendingPathComponent("vllm-\(UUID().uuidString).yaml")
            try Data(rendered.utf8).write(to: fresh)
            Issue.record("deploy/vllm.yaml is not what the renderer prints now: cp \(fresh.path) deploy/vllm.yaml")
        }
        let validation = try Self.validate(rendered)
        #expect(validation.status == 0, "\(validation.output)")
        #expect(rendered.components(separatedBy: "kind: \"Service\"").count == 2, "one Service for both tracks")
    }

    @Test func whatCannotBeRenderedSaysWhy() throws {
        let plan = try Self.plan(gpuMemory: 24, gpus: 1)
        #expect(throws: RegistryError.self, "--warmup without a warm-up request") {
            try ServingDeployment(
                plan: plan, target: .pinned(Self.digest), modelBytes: 1, replicas: 1, track: .stable, warmup: true)
        }
        #expect(throws: RegistryError.self) {
            try ServingDeployment(plan: plan, target: .pinned(Self.digest), modelBytes: 1, replicas: 0, track: .stable)
        }
    }

    @Test func yamlIsWrittenInOneForm() {
        let node = YAMLNode.map([
            ("a", .string("yes")), ("b", .int(1)), ("c", .list([.map([("d", .string("x\"y")), ("e", .bool(true))])])),
            ("f", .map([])), ("g", .list([.string("1.0")])),
        ])
        #expect(
            node.text() == """
                a: "yes"
                b: 1
                c:
                  - d: "x\\"y"
                    e: true
                f: {}
                g:
                  - "1.0"

                """)
    }
}
