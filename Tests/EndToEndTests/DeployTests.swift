import Foundation
import ModelRegistryCore
import TestServers
import Testing

/// The repository's top-level directory, from this file's place in it.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Runs a program found on PATH, output through files.
func run(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
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
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    try process.runAlone()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
        stderr: try String(contentsOf: err, encoding: .utf8))
}

@Suite(.serialized) struct DeployTests {
    static let cronJob = manifest("backup-cronjob.yaml")

    static func manifest(_ name: String) -> URL { repositoryRoot.appendingPathComponent("deploy/\(name)") }

    /// Every manifest of deploy/ against the Kubernetes API schema (kubernetes-validate, installed by .ci/test).
    @Test(arguments: [
        "registry.yaml", "registry-ha.yaml", "vllm.yaml", "vllm-hf.yaml", "vllm-imagevolume.yaml",
        "backup-cronjob.yaml",
    ])
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
                "registry.yaml", "registry-ha.yaml", "vllm.yaml", "vllm-hf.yaml", "vllm-imagevolume.yaml",
                "backup-cronjob.yaml",
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
    /// deploy/vllm-imagevolume.yaml's image volume: the reference, pull secret and mount the manifest gives, pulled
    /// as the node's runtime pulls it (skopeo, the pull secret's token as a Basic password) from a real server, its
    /// layer unpacked as the volume shows it, and vLLM's `--model` directory read by the container's user.
    @Test func theImageVolumeManifestMountsTheModel() throws {
        let script = """
            import json, sys, yaml
            docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
            pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
            vllm = pod["containers"][0]
            volume = next(v for v in pod["volumes"] if "image" in v)
            mount = next(m for m in vllm["volumeMounts"] if m["name"] == volume["name"])
            args = vllm["args"]
            print(json.dumps({"reference": volume["image"]["reference"], "secret": pod["imagePullSecrets"][0]["name"],
                              "mount": mount["mountPath"], "readOnly": mount.get("readOnly", False),
                              "model": args[args.index("--model") + 1], "user": vllm["securityContext"]["runAsUser"]}))
            """
        struct Pod: Decodable {
            let reference, secret, mount, model: String
            let readOnly: Bool
            let user: Int
        }
        let parsed = try run("python3", ["-c", script, Self.manifest("vllm-imagevolume.yaml").path])
        try #require(parsed.status == 0, "\(parsed)")
        let pod = try JSONDecoder().decode(Pod.self, from: Data(parsed.stdout.utf8))
        #expect(pod.secret == "modelreg-pull-secret" && pod.readOnly)
        #expect(pod.model == pod.mount + "/models", "vLLM reads the image's models/ directory")
        let match = try #require(pod.reference.firstMatch(of: /^([^\/]+)\/([^:]+):(.+)$/), "\(pod.reference)")
        let (model, tag) = (String(match.2), String(match.3))
        #expect(tag == "prod__modelcar", "containerd mounts only runnable images")

        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let pushed = scratch.url("model")
        try TestModel.write(to: pushed)
        for step in [["push", pushed.path, "\(model):1"], ["alias", "set", model, "prod", "1"]] {
            let result = try modelreg(step, environment: server.environment)
            try #require(result.status == 0, "\(result)")
        }
        let token = try modelreg(
            ["token", "create", "--name", "kubelet", "--scope", "read"], environment: server.environment)
        try #require(token.status == 0, "\(token)")
        let secret = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let image = server.url.replacingOccurrences(of: "http://", with: "") + "/\(model):\(tag)"
        let copied = scratch.url("pulled")
        // skopeo reads credentials under $HOME, which other tests' clients write: a home of its own.
        let skopeoHome = ["HOME": scratch.root.path, "REGISTRY_AUTH_FILE": scratch.url("auth.json").path]
        var pull = try run(
            "skopeo",
            [
                "copy", "--src-tls-verify=false", "--src-creds", "modelreg:\(secret)", "docker://\(image)",
                "dir:\(copied.path)",
            ], environment: skopeoHome)
        // The layer's digest is known once the registry has hashed it after the alias move; the kubelet retries.
        for _ in 0..<100 where pull.status != 0 && pull.stderr.lowercased().contains("manifest unknown") {
            usleep(100_000)
            try? FileManager.default.removeItem(at: copied)
            pull = try run(
                "skopeo",
                [
                    "copy", "--src-tls-verify=false", "--src-creds", "modelreg:\(secret)", "docker://\(image)",
                    "dir:\(copied.path)",
                ], environment: skopeoHome)
        }
        try #require(pull.status == 0, "\(pull)")
        let manifest =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: copied.appendingPathComponent("manifest.json"))) as? [String: Any]
        let layers = manifest?["layers"] as? [[String: Any]] ?? []
        try #require(layers.count == 1)
        let layer = String((layers[0]["digest"] as? String ?? "").dropFirst("sha256:".count))
        let volume = scratch.url("volume")
        try FileManager.default.createDirectory(at: volume, withIntermediateDirectories: true)
        let unpack = try shell("tar -xf '\(copied.appendingPathComponent(layer).path)' -C '\(volume.path)'")
        try #require(unpack.status == 0, "\(unpack.output)")
        let modelDirectory = volume.appendingPathComponent(String(pod.model.dropFirst(pod.mount.count + 1)))
        #expect(try snapshot(modelDirectory).mapValues(\.0) == (try snapshot(pushed).mapValues(\.0)))
        let read = try shell(
            "setpriv --reuid=\(pod.user) --regid=\(pod.user) --clear-groups sh -c 'cd \(volume.path) && find \(pod.model.dropFirst(pod.mount.count + 1)) -type f -exec cat {} + | wc -c'"
        )
        let expected = try snapshot(pushed).values.reduce(0) { $0 + $1.0.count }
        #expect(
            read.status == 0 && Int(read.output.trimmingCharacters(in: .whitespacesAndNewlines)) == expected, "\(read)")
    }

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
