import Foundation
import ModelRegistryCore
import Testing

/// The repository's top-level directory, from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Runs a program found on PATH, output through files.
func run(_ program: String, _ arguments: [String]) throws -> CommandResult {
    let outputs = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: outputs) }
    let out = outputs.appendingPathComponent("out")
    let err = outputs.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: out.path, contents: nil)
    _ = FileManager.default.createFile(atPath: err.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.run()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
        stderr: try String(contentsOf: err, encoding: .utf8))
}

@Suite(.serialized) struct DeployTests {
    static let cronJob = manifest("backup-cronjob.yaml")

    static func manifest(_ name: String) -> URL { repositoryRoot.appendingPathComponent("deploy/\(name)") }

    /// Every manifest of deploy/ against the Kubernetes API schema (kubernetes-validate, installed by .ci/test).
    @Test(arguments: ["registry.yaml", "registry-ha.yaml", "vllm.yaml", "vllm-hf.yaml", "backup-cronjob.yaml"])
    func manifestIsValidKubernetes(_ name: String) throws {
        let result = try run("kubernetes-validate", ["--strict", Self.manifest(name).path])
        #expect(result.status == 0, "\(result)")
    }

    /// deploy/ holds exactly the manifests validated above, so a new one cannot skip validation.
    @Test func everyManifestIsValidated() throws {
        let files = try FileManager.default.contentsOfDirectory(
            atPath: repositoryRoot.appendingPathComponent("deploy").path)
        #expect(
            Set(files.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }) == [
                "registry.yaml", "registry-ha.yaml", "vllm.yaml", "vllm-hf.yaml", "backup-cronjob.yaml",
            ])
    }

    /// deploy/vllm-hf.yaml's vLLM downloads over the Hub protocol: its model, revision, endpoint and token as
    /// the manifest gives them, the download as vLLM's Hub client makes it (`snapshot_download`, into HF_HOME),
    /// against a real server holding the model, with a read token.
    @Test func theHubManifestsDownloadWorks() throws {
        let script = """
            import json, sys, yaml
            docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
            pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
            vllm = pod["containers"][0]
            env = {e["name"]: e.get("value", e.get("valueFrom")) for e in vllm["env"]}
            args = vllm["args"]
            print(json.dumps({"model": args[args.index("--model") + 1], "revision": args[args.index("--revision") + 1],
                              "endpoint": env["HF_ENDPOINT"], "home": env["HF_HOME"],
                              "token": env["HF_TOKEN"]["secretKeyRef"]["name"],
                              "mounts": [m["mountPath"] for m in vllm["volumeMounts"]], "init": "initContainers" in pod}))
            """
        struct Pod: Decodable {
            let model, revision, endpoint, home, token: String
            let mounts: [String]
            let `init`: Bool
        }
        let parsed = try run("python3", ["-c", script, Self.manifest("vllm-hf.yaml").path])
        try #require(parsed.status == 0, "\(parsed)")
        let pod = try JSONDecoder().decode(Pod.self, from: Data(parsed.stdout.utf8))
        #expect(pod.endpoint == "http://modelreg:8750/hf" && pod.token == "modelreg-read-token" && !pod.`init`)
        #expect(pod.mounts.contains(pod.home), "HF_HOME must be a volume: the root file system is the image's")

        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        for step in [["push", model.path, "\(pod.model):1"], ["alias", "set", pod.model, pod.revision, "1"]] {
            let result = try modelreg(step, environment: server.environment)
            try #require(result.status == 0, "\(result)")
        }
        let token = try modelreg(
            ["token", "create", "--name", "vllm", "--scope", "read"], environment: server.environment)
        try #require(token.status == 0, "\(token)")
        let download = try CommandProcess(
            [
                "python3", "-c",
                """
                import hashlib, json, os, sys
                from huggingface_hub import snapshot_download
                path = snapshot_download(sys.argv[1], revision=sys.argv[2])
                print(json.dumps({os.path.relpath(os.path.join(b, n), path): hashlib.sha256(open(os.path.join(b, n), "rb").read()).hexdigest()
                                  for b, _, names in os.walk(path) for n in names}))
                """, pod.model, pod.revision,
            ],
            environment: [
                "HF_ENDPOINT": pod.endpoint.replacingOccurrences(of: "http://modelreg:8750", with: server.url),
                "HF_TOKEN": token.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                "HF_HOME": scratch.url(String(pod.home.dropFirst())).path,
            ],
            executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(download.status == 0, "\(download)")
        let files = try JSONDecoder().decode([String: String].self, from: Data(download.stdout.utf8))
        #expect(files == (try snapshot(model).mapValues { Digest.of($0.0).hex }))
    }

    /// The CronJob's policy, and its steps run as written by the real binary against a real server.
    @Test func backupCronJobStepsWork() throws {
        let script = """
            import json, sys, yaml
            docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
            job = next(d for d in docs if d["kind"] == "CronJob")
            pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            steps = pod.get("initContainers", []) + pod["containers"]
            token = next((e for e in steps[0].get("env", []) if e["name"] == "MODELREG_TOKEN"), {})
            print(json.dumps({"policy": job["spec"]["concurrencyPolicy"], "steps": [s["args"] for s in steps],
                              "tokenSecretKey": token.get("valueFrom", {}).get("secretKeyRef", {}).get("key")}))
            """
        let parsed = try run("python3", ["-c", script, Self.cronJob.path])
        try #require(parsed.status == 0, "\(parsed)")
        struct Job: Decodable {
            var policy: String
            var steps: [[String]]
            var tokenSecretKey: String?
        }
        let job = try JSONDecoder().decode(Job.self, from: Data(parsed.stdout.utf8))
        #expect(job.policy == "Forbid")
        #expect(job.tokenSecretKey == "token", "the admin token comes from a Secret")
        #expect(
            job.steps.map { $0.prefix(2).joined(separator: " ") } == ["backup --to", "backup prune", "backup verify"])
        #expect(job.steps[1].contains("--keep-daily"))

        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1.0"], environment: server.environment).status == 0)
        for _ in 0..<2 {
            for step in job.steps {
                let arguments = step.map { $0.replacingOccurrences(of: "/backups", with: scratch.url("backups").path) }
                let result = try modelreg(arguments, environment: server.environment)
                #expect(result.status == 0, "\(arguments): \(result)")
            }
        }
        server.stop()
    }
}
