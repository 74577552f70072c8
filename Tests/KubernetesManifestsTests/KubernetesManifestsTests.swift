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
    static func plan(gpuMemory: Int64, gpus: Int, profile: ServingProfile? = nil) throws -> ServingPlan {
        let metadata = ModelMetadata(
            architecture: "Qwen2ForCausalLM", parameterCount: 7_615_616_512, dtypeBytes: ["BF16": 15_231_233_024],
            weightBytes: 15_231_233_024, torchDtype: "bfloat16", contextLength: 32768, layers: 28, hiddenSize: 3584,
            attentionHeads: 28, kvHeads: 4, headDim: 128, kvCacheBytesPerToken: 2 * 28 * 4 * 128 * 2,
            weightFiles: ["model.safetensors": "safetensors"])
        let plan = try ServingPlanner.plan(
            model: try ModelName("org/qwen2-7b"), version: try VersionName("1.2"),
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
            plan: plan, digest: Self.digest, modelBytes: 15_231_300_000, replicas: 3, track: .stable,
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
            try ServingDeployment(plan: plan, digest: digest, modelBytes: 15 << 30, replicas: 1, track: .canary).yaml()
        }
        let first = try render(Self.digest)
        #expect(try render(Self.digest) == first)
        let moved = try render(Digest.of(Array("another".utf8)))
        #expect(moved != first && !moved.contains(Self.digest.description))
        #expect(try Self.validate(first).status == 0)
        #expect(!first.contains("HorizontalPodAutoscaler") && !first.contains("postStart"))
    }

    @Test func whatCannotBeRenderedSaysWhy() throws {
        let plan = try Self.plan(gpuMemory: 24, gpus: 1)
        #expect(throws: RegistryError.self, "--warmup without a warm-up request") {
            try ServingDeployment(
                plan: plan, digest: Self.digest, modelBytes: 1, replicas: 1, track: .stable, warmup: true)
        }
        #expect(throws: RegistryError.self) {
            try ServingDeployment(plan: plan, digest: Self.digest, modelBytes: 1, replicas: 0, track: .stable)
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
