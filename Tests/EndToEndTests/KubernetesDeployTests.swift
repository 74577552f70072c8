import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import TestServers
import Testing

/// The manifests as JSON, one object a YAML document, read with PyYAML (installed with kubernetes-validate).
func kubernetesObjects(_ file: URL) throws -> [[String: Any]] {
    let script = "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))"
    let result = try run("python3", ["-c", script, file.path])
    try #require(result.status == 0, "\(result)")
    return try #require(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
}

/// A value deep inside a manifest: `value(object, "spec", "template", "spec")`; nil when a step is missing.
func value(_ object: Any?, _ path: String...) -> Any? {
    path.reduce(object) { current, key in
        if let index = Int(key) { return (current as? [Any]).flatMap { index < $0.count ? $0[index] : nil } }
        return (current as? [String: Any])?[key]
    }
}

/// The registry and vLLM manifests: their policies, and the containers' commands run as written by the
/// real binary against a real server (no cluster here: the paths of the volumes become scratch directories).
@Suite(.serialized) struct KubernetesDeployTests {
    static let registry = repositoryRoot.appendingPathComponent("deploy/registry.yaml")
    static let vllm = repositoryRoot.appendingPathComponent("deploy/vllm.yaml")
    static let registryHA = repositoryRoot.appendingPathComponent("deploy/registry-ha.yaml")

    static func object(_ objects: [[String: Any]], kind: String, name: String) throws -> [String: Any] {
        try #require(
            objects.first { $0["kind"] as? String == kind && value($0, "metadata", "name") as? String == name },
            "\(kind) \(name)")
    }

    /// The container's arguments with the pod's paths replaced by local ones.
    static func localArguments(_ container: Any?, _ paths: [String: String]) throws -> [String] {
        let arguments = try #require(value(container, "args") as? [String])
        return arguments.map { argument in
            paths.reduce(argument) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
        }
    }

    @Test func theRegistryDeploymentServesAsWritten() async throws {
        let objects = try kubernetesObjects(Self.registry)
        let deployment = try Self.object(objects, kind: "Deployment", name: "modelreg")
        #expect(
            value(deployment, "spec", "strategy", "type") as? String == "Recreate", "one pod at a time on the volume")
        #expect(value(deployment, "spec", "replicas") as? Int == 1)
        let pod = value(deployment, "spec", "template", "spec")
        let container = value(pod, "containers", "0")
        #expect(value(container, "livenessProbe", "httpGet", "path") as? String == "/health/live")
        #expect(value(container, "readinessProbe", "httpGet", "path") as? String == "/health/ready")
        #expect(
            value(container, "resources", "limits", "memory") != nil
                && value(container, "resources", "requests", "cpu") != nil)
        // SIGTERM drains for --drain-timeout and cuts off what is left about 2 s later; a kubelet that
        // gave up sooner would SIGKILL uploads the drain was letting finish.
        let serveArguments = try #require(value(container, "args") as? [String])
        let drainIndex = try #require(serveArguments.firstIndex(of: "--drain-timeout"), "the drain is set explicitly")
        let drain = try DurationText.seconds(serveArguments[drainIndex + 1])
        let grace = try #require(value(pod, "terminationGracePeriodSeconds") as? Int)
        #expect(drain + 5 <= grace, "terminationGracePeriodSeconds \(grace) leaves the \(drain) s drain no margin")
        let volumes = try #require(value(pod, "volumes") as? [[String: Any]])
        #expect(volumes.contains { value($0, "persistentVolumeClaim", "claimName") as? String == "modelreg-data" })
        #expect(volumes.contains { value($0, "secret", "secretName") as? String == "modelreg-admin-token" })
        _ = try Self.object(objects, kind: "PersistentVolumeClaim", name: "modelreg-data")
        let service = try Self.object(objects, kind: "Service", name: "modelreg")
        let labels = try #require(value(deployment, "spec", "template", "metadata", "labels") as? [String: String])
        let selector = try #require(value(service, "spec", "selector") as? [String: String])
        #expect(selector.allSatisfy { labels[$0.key] == $0.value }, "the Service selects the registry's pods")
        #expect(value(service, "spec", "ports", "0", "port") as? Int == 8750)

        // The container's command, with the Secret's file and the volume as local paths.
        let scratch = try Scratch()
        let secretDirectory = scratch.url("secret")
        try FileManager.default.createDirectory(at: secretDirectory, withIntermediateDirectories: true)
        let placeholder = try #require(
            value(try Self.object(objects, kind: "Secret", name: "modelreg-admin-token"), "stringData", "token")
                as? String)
        let paths = [
            "/etc/modelreg/admin": secretDirectory.path, "/data": scratch.url("data").path, "0.0.0.0": "127.0.0.1",
            "8750": "0",
        ]
        let arguments = try Self.localArguments(container, paths)

        // The manifest's placeholder Secret is refused: nobody runs a registry whose admin token is in git.
        try Data(placeholder.utf8).write(to: secretDirectory.appendingPathComponent("token"))
        let refused = try modelreg(arguments)
        #expect(refused.status != 0 && refused.stderr.contains("at least 32"), "\(refused)")

        let token = (0..<4).map { _ in UUID().uuidString.replacingOccurrences(of: "-", with: "") }.joined()
        try Data((token + "\n").utf8).write(to: secretDirectory.appendingPathComponent("token"))
        let server = try ServerProcess(data: scratch.url("data"), arguments: arguments, adminToken: token)
        for path in ["/health/live", "/health/ready"] {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: server.url + path), timeout: .seconds(10))
            #expect(response.status == .ok, "\(path)")
        }
        let tokens = try modelreg(["token", "list", "--json"], environment: server.environment)
        #expect(tokens.status == 0 && tokens.stdout.contains("admin-token-file"), "\(tokens)")
        #expect(
            !FileManager.default.fileExists(atPath: scratch.url("data/admin.token").path),
            "no second admin token is made")
        server.stop()

        // A restart with the same Secret changes nothing; a rotated Secret replaces the token.
        let again = try ServerProcess(data: scratch.url("data"), arguments: arguments, adminToken: token)
        #expect(try modelreg(["token", "list"], environment: again.environment).status == 0)
        again.stop()
        let rotated = token.lowercased()
        try Data(rotated.utf8).write(to: secretDirectory.appendingPathComponent("token"))
        let after = try ServerProcess(data: scratch.url("data"), arguments: arguments, adminToken: rotated)
        #expect(try modelreg(["token", "list"], environment: after.environment).status == 0)
        var old = after.environment
        old["MODELREG_TOKEN"] = token
        #expect(try modelreg(["token", "list"], environment: old).status == 4, "the rotated-out token no longer works")
        // A revoked token stays revoked: the Secret cannot bring it back.
        #expect(try modelreg(["token", "revoke", "admin-token-file"], environment: after.environment).status == 0)
        after.stop()
        let revoked = try modelreg(arguments)
        #expect(revoked.status != 0 && revoked.stderr.contains("revoked"), "\(revoked)")
    }

    /// The replicated registry: its rollout and disruption policy, and three of its pods' commands run as written
    /// against a real PostgreSQL and a real S3 (moto), each with its own scratch directory: every one ready, a
    /// push through one pulled through another, and one SIGKILLed while the others serve on.
    @Test func theReplicatedRegistryServesAsWritten() throws {
        let objects = try kubernetesObjects(Self.registryHA)
        let deployment = try Self.object(objects, kind: "Deployment", name: "modelreg")
        #expect(value(deployment, "spec", "replicas") as? Int == 3)
        #expect(value(deployment, "spec", "strategy", "type") as? String == "RollingUpdate")
        #expect(value(deployment, "spec", "strategy", "rollingUpdate", "maxUnavailable") as? Int == 0)
        let pod = value(deployment, "spec", "template", "spec")
        let labels = try #require(value(deployment, "spec", "template", "metadata", "labels") as? [String: String])
        let budget = try Self.object(objects, kind: "PodDisruptionBudget", name: "modelreg")
        let budgetSelector = try #require(value(budget, "spec", "selector", "matchLabels") as? [String: String])
        #expect(budgetSelector.allSatisfy { labels[$0.key] == $0.value }, "the budget covers the registry's pods")
        #expect(value(budget, "spec", "maxUnavailable") as? Int == 1)
        let spread = value(
            pod, "affinity", "podAntiAffinity", "preferredDuringSchedulingIgnoredDuringExecution", "0",
            "podAffinityTerm")
        #expect(value(spread, "topologyKey") as? String == "kubernetes.io/hostname")
        let container = value(pod, "containers", "0")
        #expect(value(container, "readinessProbe", "httpGet", "path") as? String == "/health/ready")
        #expect(value(container, "securityContext", "readOnlyRootFilesystem") as? Bool == true)
        let serveArguments = try #require(value(container, "args") as? [String])
        let grace = try #require(value(pod, "terminationGracePeriodSeconds") as? Int)
        let drain = try DurationText.seconds(serveArguments[serveArguments.firstIndex(of: "--drain-timeout")! + 1])
        #expect(drain + 5 <= grace)

        // The Secrets' files, with real values; the pod's PostgreSQL and S3 become the test's.
        let scratch = try Scratch()
        let postgres = try PostgresServer.shared()
        let database = try postgres.createDatabase()
        defer { postgres.dropDatabase(database) }
        let moto = try MotoServer.shared()
        let bucket = try moto.createBucket()
        let token = (0..<4).map { _ in UUID().uuidString.replacingOccurrences(of: "-", with: "") }.joined()
        let secrets = [
            "admin": ("token", token + "\n"), "postgres": ("password", "unused-on-a-trusting-server\n"),
            "s3": (
                "credentials",
                "AWS_ACCESS_KEY_ID=\(MotoServer.accessKey)\nAWS_SECRET_ACCESS_KEY=\(MotoServer.secretKey)\n"
            ),
        ]
        var paths = [
            "0.0.0.0": "127.0.0.1", "8750": "0",
            "postgres://modelreg@postgres:5432/modelreg?sslmode=require": postgres.url(database) + "?sslmode=disable",
            "s3://models/registry?endpoint=http://minio:9000&region=us-east-1": moto.url(
                bucket: bucket, prefix: "registry"),
        ]
        for (directory, (file, content)) in secrets {
            let local = scratch.url("secrets/\(directory)")
            try FileManager.default.createDirectory(at: local, withIntermediateDirectories: true)
            try Data(content.utf8).write(to: local.appendingPathComponent(file))
            paths["/etc/modelreg/\(directory)"] = local.path
        }
        let servers = try (0..<3).map { index in
            var local = paths
            local["/data"] = scratch.url("pod-\(index)").path
            return try ServerProcess(
                data: scratch.url("pod-\(index)"), arguments: try Self.localArguments(container, local),
                adminToken: token)
        }
        for server in servers { #expect(try httpStatus(server.url + "/health/ready") == 200) }
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let push = try modelreg(["push", model.path, "org/m:1"], environment: servers[0].environment)
        try #require(push.status == 0, "\(push)")
        servers[0].kill()
        for (index, server) in servers.dropFirst().enumerated() {
            let destination = scratch.url("pulled-\(index)")
            let pull = try modelreg(["pull", "org/m:1", "--dest", destination.path], environment: server.environment)
            #expect(pull.status == 0, "\(pull)")
            try expectSameTree(model, destination)
        }
        #expect(regularFiles(scratch.url("pod-1")).isEmpty, "a pod keeps nothing in its scratch directory")
    }

    @Test func theVLLMInitContainersFetchTheirAliases() throws {
        let objects = try kubernetesObjects(Self.vllm)
        let service = try Self.object(objects, kind: "Service", name: "vllm-qwen2-7b")
        let selector = try #require(value(service, "spec", "selector") as? [String: String])

        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        for version in ["1", "2"] {
            let model = scratch.url("model-\(version)")
            try TestModel.write(to: model, seed: UInt64(version)!)
            let push = try modelreg(["push", model.path, "qwen2-7b:\(version)"], environment: server.environment)
            try #require(push.status == 0, "\(push)")
        }
        for (alias, version) in [("prod", "1"), ("canary", "2")] {
            #expect(
                try modelreg(["alias", "set", "qwen2-7b", alias, version], environment: server.environment).status == 0)
        }
        let created = try modelreg(
            ["token", "create", "--name", "vllm", "--scope", "read", "--json"], environment: server.environment)
        try #require(created.status == 0, "\(created)")
        let readToken = try #require(
            (try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])?["token"] as? String)
        let nodeCache = scratch.url("node/var/lib/modelreg-cache")

        for (name, version) in [("vllm-qwen2-7b-stable", "1"), ("vllm-qwen2-7b-canary", "2")] {
            let deployment = try Self.object(objects, kind: "Deployment", name: name)
            let pod = value(deployment, "spec", "template", "spec")
            let labels = try #require(value(deployment, "spec", "template", "metadata", "labels") as? [String: String])
            #expect(selector.allSatisfy { labels[$0.key] == $0.value }, "the Service sends requests to \(name)")
            let fetch = (value(pod, "initContainers") as? [Any])?.first {
                value($0, "name") as? String == "fetch-model"
            }
            let vllm = value(pod, "containers", "0")

            // vLLM reads what the init container wrote, on a GPU node, and is ready when /health answers.
            let fetchMounts = try #require(value(fetch, "volumeMounts") as? [[String: Any]])
            let vllmMounts = try #require(value(vllm, "volumeMounts") as? [[String: Any]])
            let modelsVolume = fetchMounts.first { $0["mountPath"] as? String == "/models" }?["name"] as? String
            #expect(
                modelsVolume != nil
                    && vllmMounts.contains {
                        $0["name"] as? String == modelsVolume && $0["mountPath"] as? String == "/models"
                    })
            #expect((value(vllm, "args") as? [String])?.starts(with: ["--model", "/models"]) == true)
            #expect(value(vllm, "readinessProbe", "httpGet", "path") as? String == "/health")
            #expect(value(vllm, "resources", "limits", "nvidia.com/gpu") as? String == "1")
            #expect(
                (value(pod, "tolerations") as? [[String: Any]])?.contains { $0["key"] as? String == "nvidia.com/gpu" }
                    == true)
            let cacheVolume = try #require(
                fetchMounts.first { $0["mountPath"] as? String == "/var/cache/modelreg" }?["name"] as? String)
            let volumes = try #require(value(pod, "volumes") as? [[String: Any]])
            #expect(
                volumes.contains { $0["name"] as? String == cacheVolume && value($0, "hostPath", "path") != nil },
                "the node cache is shared by the node's pods")
            let env = try #require(value(fetch, "env") as? [[String: Any]])
            #expect(
                env.contains {
                    $0["name"] as? String == "MODELREG_TOKEN"
                        && value($0, "valueFrom", "secretKeyRef", "name") as? String == "modelreg-read-token"
                })

            // The init container's command, run as written, with its volumes as local directories.
            let models = scratch.url("pods/\(name)/models")
            let arguments = try Self.localArguments(
                fetch, ["/models": models.path, "/var/cache/modelreg": nodeCache.path])
            for run in 1...2 {
                let result = try modelreg(
                    arguments, environment: ["MODELREG_URL": server.url, "MODELREG_TOKEN": readToken])
                #expect(result.status == 0, "\(name) run \(run): \(result)")
            }
            let marker =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: models.appendingPathComponent(".modelreg-fetch.json"))) as? [String: Any]
            #expect(marker?["version"] as? String == version, "\(name) runs the version its alias points at")
            try FileManager.default.removeItem(at: models.appendingPathComponent(".modelreg-fetch.json"))
            try expectSameTree(scratch.url("model-\(version)"), models)
        }
        server.stop()
    }
}

/// deploy/Dockerfile without a Docker engine: its stages, and that its runtime stage installs every shared
/// library the binary links once the Swift runtime is linked in statically.
@Suite struct DockerfileTests {
    struct Instruction {
        var keyword: String
        var arguments: String
    }

    /// The instructions, with continuation lines joined and comments dropped.
    static func instructions() throws -> [Instruction] {
        let text = try String(contentsOf: repositoryRoot.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        var joined: [String] = []
        var current = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if current.isEmpty && (trimmed.isEmpty || trimmed.hasPrefix("#")) { continue }
            if trimmed.hasSuffix("\\") {
                current += trimmed.dropLast() + " "
            } else {
                joined.append(current + trimmed)
                current = ""
            }
        }
        return joined.map { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            return Instruction(keyword: parts[0].uppercased(), arguments: parts.count > 1 ? String(parts[1]) : "")
        }
    }

    @Test func stagesBuildStaticallyAndRunAsAnUnprivilegedUser() throws {
        let instructions = try Self.instructions()
        let stages = instructions.filter { $0.keyword == "FROM" }.map(\.arguments)
        try #require(stages.count == 2, "\(stages)")
        #expect(stages[0].hasPrefix("swift:") && stages[0].hasSuffix(" AS build"))
        #expect(
            stages[1].hasPrefix("debian:") && !stages[1].contains("swift"), "the runtime image carries no toolchain")
        #expect(
            instructions.contains {
                $0.keyword == "RUN"
                    && $0.arguments.contains("swift build -c release --static-swift-stdlib --product modelreg")
            })
        #expect(instructions.contains { $0.keyword == "COPY" && $0.arguments.hasPrefix("--from=build ") })
        let user = try #require(instructions.last { $0.keyword == "USER" }?.arguments)
        #expect(user == "10001:10001", "the user the manifests' securityContext names")
        #expect(instructions.last { $0.keyword == "ENTRYPOINT" }?.arguments == #"["/usr/local/bin/modelreg"]"#)
        #expect(instructions.contains { $0.keyword == "EXPOSE" && $0.arguments == "8750" })
    }

    /// Every library of `ldd` that is not the Swift runtime must come from a package the runtime stage
    /// installs, or from one of their dependencies, or from the base image (apt's own dependencies).
    @Test func theRuntimeStageHasEveryLibraryTheBinaryLinks() throws {
        let instructions = try Self.instructions()
        let runtime = try #require(instructions.lastIndex { $0.keyword == "FROM" })
        let install = try #require(
            instructions[runtime...].first { $0.keyword == "RUN" && $0.arguments.contains("apt-get install") }?
                .arguments)
        let words = install.split(separator: " ").map(String.init)
        let start = try #require(words.firstIndex(of: "install"))
        let packages = words[(start + 1)...].prefix { $0 != "&&" }.filter { !$0.hasPrefix("-") }
        #expect(packages.contains("libsqlite3-0") && packages.contains("libarchive13") && packages.contains("libssl3"))

        let closure = try run(
            "apt-cache",
            [
                "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                "--no-breaks", "--no-replaces", "--no-enhances", "--no-pre-depends",
            ] + packages + ["apt"])
        try #require(closure.status == 0, "\(closure)")
        let available = Set(
            closure.stdout.split(separator: "\n").map { line in
                line.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "Depends: ", with: "")
                    .trimmingCharacters(in: CharacterSet(charactersIn: "<>")).split(separator: ":").first.map(
                        String.init) ?? ""
            })

        let ldd = try run("ldd", [modelregBinary.path])
        try #require(ldd.status == 0, "\(ldd)")
        let swiftRuntime = ["libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"]
        let libraries = ldd.stdout.split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(whereSeparator: \.isWhitespace)
            guard parts.count >= 3, parts[1] == "=>" else { return nil }
            let name = String(parts[0])
            return swiftRuntime.contains { name.hasPrefix($0) } ? nil : String(parts[2])
        }
        #expect(libraries.contains { $0.contains("libsqlite3") } && libraries.contains { $0.contains("libarchive") })
        for library in libraries {
            // Merged /usr: dpkg knows a library under the directory its package installed it in.
            let candidates = [
                library,
                library.hasPrefix("/lib/")
                    ? "/usr" + library : library.replacingOccurrences(of: "/usr/lib/", with: "/lib/"),
            ]
            let owner = try candidates.lazy.map { try run("dpkg", ["-S", $0]) }.first { $0.status == 0 }
            let package = try #require(
                owner?.stdout.split(separator: ":").first.map(String.init), "no package owns \(library)")
            #expect(
                available.contains(package),
                "\(library) comes from \(package), which the runtime stage does not install")
        }
    }
}
