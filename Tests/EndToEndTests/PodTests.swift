import FileSystemIO
import Foundation
import ModelRegistryCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The containers of `deploy/` run as the kubelet runs them: in a `PodSandbox` (read-only root, each volume
/// its own tmpfs mount, the manifest's user, capabilities and environment), with the manifest's own
/// commands, one after another, against a real server on the loopback.
@Suite(.serialized) struct PodTests {
    /// A pod template's containers in the order the kubelet starts them, each as the sandbox runs it.
    struct Container {
        var name: String
        var arguments: [String]
        var uid: Int
        var gid: Int
        var groups: [Int]
        var environment: [String: String]
        var mounts: [String]
        var readOnlyRoot: Bool
        /// `securityContext.capabilities.add`: all others are dropped.
        var capabilities: [String]

        func run(in sandbox: PodSandbox) throws -> CommandResult { try start(in: sandbox).wait() }

        func start(in sandbox: PodSandbox) throws -> CommandProcess {
            try sandbox.start(
                arguments, uid: uid, gid: gid, groups: groups, capabilities: capabilities, environment: environment)
        }
    }

    static func containers(_ pod: Any?, secrets: [String: String], environment: [String: String]) throws -> [Container]
    {
        let all = ((value(pod, "initContainers") as? [Any]) ?? []) + ((value(pod, "containers") as? [Any]) ?? [])
        return try all.map { container in
            let security = value(container, "securityContext")
            let podSecurity = value(pod, "securityContext")
            let uid = (value(security, "runAsUser") ?? value(podSecurity, "runAsUser")) as? Int ?? 0
            let gid = (value(security, "runAsGroup") ?? value(podSecurity, "runAsGroup")) as? Int ?? 0
            var env = environment
            for variable in (value(container, "env") as? [[String: Any]]) ?? [] {
                let name = try #require(variable["name"] as? String)
                if let literal = variable["value"] as? String {
                    env[name] = environment[name] ?? literal
                } else {
                    let secret = try #require(value(variable, "valueFrom", "secretKeyRef", "name") as? String)
                    let token: String = try #require(secrets[secret], "the test supplies the Secret \(secret)")
                    env[name] = token
                }
            }
            let command = (value(container, "command") as? [String]) ?? [PodSandbox.binary]
            return Container(
                name: try #require(value(container, "name") as? String),
                arguments: command + ((value(container, "args") as? [String]) ?? []),
                uid: uid, gid: gid, groups: (value(podSecurity, "fsGroup") as? Int).map { [$0] } ?? [],
                environment: env,
                mounts: ((value(container, "volumeMounts") as? [[String: Any]]) ?? []).compactMap {
                    $0["mountPath"] as? String
                },
                readOnlyRoot: value(security, "readOnlyRootFilesystem") as? Bool == true,
                capabilities: (value(security, "capabilities", "add") as? [String]) ?? []
            )
        }
    }

    /// The tmpfs options that give a volume the owner and mode the kubelet gives it.
    static func volumes(_ pod: Any?) throws -> [PodSandbox.Volume] {
        let declared = try #require(value(pod, "volumes") as? [[String: Any]])
        var mounts: [String: String] = [:]
        for container
            in (((value(pod, "initContainers") as? [Any]) ?? []) + ((value(pod, "containers") as? [Any]) ?? []))
        {
            for mount in (value(container, "volumeMounts") as? [[String: Any]]) ?? [] {
                if let name = mount["name"] as? String, let path = mount["mountPath"] as? String { mounts[path] = name }
            }
        }
        let fsGroup = value(pod, "securityContext", "fsGroup") as? Int
        return try mounts.sorted { $0.key < $1.key }.map { path, name in
            let volume = try #require(declared.first { $0["name"] as? String == name }, "volume \(name)")
            let options: String
            if volume["emptyDir"] != nil {
                options = "size=512m,mode=0777"
            } else if volume["hostPath"] != nil {
                // DirectoryOrCreate: the kubelet creates it as root, 0755.
                options = "size=512m,mode=0755"
            } else {
                // A claim: the kubelet makes an fsGroup the group owner, setgid.
                options = "size=512m,mode=2775" + (fsGroup.map { ",gid=\($0)" } ?? "")
            }
            return PodSandbox.Volume(mountPath: path, options: options)
        }
    }

    /// Files of a directory in the pod, with the fetch marker left out.
    static func placedFiles(_ sandbox: PodSandbox, _ path: String) throws -> [String: (Data, Bool)] {
        try snapshot(URL(fileURLWithPath: sandbox.hostPath(path))).filter { $0.key != ".modelreg-fetch.json" }
    }

    static func expectSame(
        _ placed: [String: (Data, Bool)], _ model: URL, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let expected = try snapshot(model)
        #expect(placed.keys.sorted() == expected.keys.sorted(), sourceLocation: sourceLocation)
        for (path, (bytes, executable)) in expected {
            #expect(
                placed[path]?.0 == bytes && placed[path]?.1 == executable, "\(path)", sourceLocation: sourceLocation)
        }
    }

    @Test(.enabled(if: PodSandbox.available, PodSandbox.reason))
    func theVLLMPodsInitContainersFetchUnderAReadOnlyRootAndResume() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.stop() }
        let model = scratch.url("model")
        try TestModel.write(to: model, shards: 2)
        // Long enough a transfer to be killed in the middle of.
        var big = [UInt8](repeating: 0, count: 96 << 20)
        for index in stride(from: 0, to: big.count, by: 4096) { big[index] = UInt8(truncatingIfNeeded: index / 4096) }
        try Data(big).write(to: model.appendingPathComponent("weights-extra.bin"))
        let push = try modelreg(["push", model.path, "qwen2-7b:1", "--no-inspect"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        try #require(
            try modelreg(["alias", "set", "qwen2-7b", "prod", "1"], environment: server.environment).status == 0)
        let created = try modelreg(
            ["token", "create", "--name", "vllm", "--scope", "read", "--json"], environment: server.environment)
        let token = try #require(
            (try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: Any])?["token"] as? String)

        let objects = try kubernetesObjects(KubernetesDeployTests.vllm)
        let pod = value(
            try KubernetesDeployTests.object(objects, kind: "Deployment", name: "vllm-qwen2-7b-stable"), "spec",
            "template", "spec")
        let all = try Self.containers(
            pod, secrets: ["modelreg-read-token": token], environment: ["MODELREG_URL": server.url])
        let initContainers = all.filter { $0.name != "vllm" }
        let fetch = try #require(initContainers.first { $0.arguments.dropFirst().first == "fetch" })
        #expect(fetch.readOnlyRoot && fetch.uid == 10001, "the manifest runs fetch unprivileged under a read-only root")
        let sandbox = try PodSandbox(scratch: scratch.root, volumes: try Self.volumes(pod))

        // First start: killed once the big file is partly written, as an OOM kill or a node drain would.
        for container in initContainers where container.name != fetch.name {
            let result = try container.run(in: sandbox)
            #expect(result.status == 0, "\(container.name): \(result)")
        }
        let running = try fetch.start(in: sandbox)
        var killedAt: Int64 = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, killedAt == 0, running.isRunning {
            let staged =
                ((try? FileManager.default.contentsOfDirectory(atPath: sandbox.hostPath("/models"))) ?? [])
                .filter { $0.hasPrefix(".modelreg-staging-") }
                .compactMap { try? POSIXFile.regularFileSize(sandbox.hostPath("/models/\($0)/weights-extra.bin")) }
                .first ?? 0
            if staged > 8 << 20, staged < Int64(big.count) {
                running.kill()
                killedAt = staged
            }
            usleep(2000)
        }
        let killed = try running.wait()
        try #require(killedAt > 0, "the fetch ended before it could be killed: \(killed)")
        let visible = try FileManager.default.contentsOfDirectory(atPath: sandbox.hostPath("/models"))
        #expect(
            visible.allSatisfy { $0.hasPrefix(".modelreg-staging-") }, "nothing of the model is visible yet: \(visible)"
        )

        // The restarted init container continues the download, then places everything and its marker.
        let resumed = try fetch.run(in: sandbox)
        try #require(resumed.status == 0, "\(resumed)")
        #expect(resumed.stderr.contains("resumed weights-extra.bin"), "\(resumed.stderr)")
        try Self.expectSame(try Self.placedFiles(sandbox, "/models"), model)
        let marker = try Data(contentsOf: URL(fileURLWithPath: sandbox.hostPath("/models/.modelreg-fetch.json")))
        #expect(String(decoding: marker, as: UTF8.self).contains("\"version\":\"1\""))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: sandbox.hostPath("/models")).filter {
                $0.hasPrefix(".modelreg-staging-")
            }.isEmpty)

        // Warm: the same pod restarting finds everything in place and transfers nothing.
        let warm = try fetch.run(in: sandbox)
        #expect(warm.status == 0 && warm.stderr.contains("is already in /models"), "\(warm)")

        // A new pod on the same node: an empty emptyDir, the node cache (another mount) already filled.
        try sandbox.remount("/models", options: "size=512m,mode=0777")
        let second = try fetch.run(in: sandbox)
        try #require(second.status == 0, "\(second)")
        #expect(second.stderr.contains(": 0 B downloaded"), "every file came from the node cache: \(second.stderr)")
        try Self.expectSame(try Self.placedFiles(sandbox, "/models"), model)
    }

    /// A server with `tiny:1` pushed, and the pushed directory.
    static func registryWithTinyModel(_ scratch: Scratch) throws -> (ServerProcess, URL) {
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        try #require(
            try modelreg(["push", model.path, "tiny:1", "--no-inspect"], environment: server.environment).status == 0)
        return (server, model)
    }

    @Test(.enabled(if: PodSandbox.available, PodSandbox.reason))
    func pullIntoAMountPointUnderAReadOnlyRoot() throws {
        let scratch = try Scratch()
        let (server, model) = try Self.registryWithTinyModel(scratch)
        defer { server.stop() }
        let sandbox = try PodSandbox(
            scratch: scratch.root, volumes: [PodSandbox.Volume(mountPath: "/models", options: "size=64m,mode=0777")])
        let environment = ["MODELREG_URL": server.url, "MODELREG_TOKEN": server.adminToken]
        let pulled = try sandbox.run(
            [PodSandbox.binary, "pull", "tiny:1", "--dest", "/models"], environment: environment)
        #expect(pulled.status == 0, "\(pulled)")
        try Self.expectSame(try Self.placedFiles(sandbox, "/models"), model)
        // A second pull into the now full mount point is refused (it is not empty) and replaces it with --force.
        let again = try sandbox.run(
            [PodSandbox.binary, "pull", "tiny:1", "--dest", "/models"], environment: environment)
        #expect(again.status == 7 && again.stderr.contains("--force"), "\(again)")
        let forced = try sandbox.run(
            [PodSandbox.binary, "pull", "tiny:1", "--dest", "/models", "--force"], environment: environment)
        #expect(forced.status == 0, "\(forced)")
        try Self.expectSame(try Self.placedFiles(sandbox, "/models"), model)
        // Elsewhere in the read-only root, pull and fetch fail with the storage code (1) and one error line that
        // names the path and the cause.
        for command in ["pull", "fetch"] {
            let readOnly = try sandbox.run(
                [PodSandbox.binary, command, "tiny:1", "--dest", "/srv/model"], environment: environment)
            #expect(
                readOnly.status == 1 && readOnly.stderr.contains("/srv/model")
                    && readOnly.stderr.contains("Read-only file system"), "\(command): \(readOnly)")
            #expect(!readOnly.stderr.contains("NSCocoaErrorDomain"), "\(command): \(readOnly)")
            let errorLines = readOnly.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
            #expect(errorLines.count == 1, "\(command): \(readOnly.stderr)")
        }
    }

    @Test(.enabled(if: PodSandbox.available, PodSandbox.reason))
    func theBackupCronJobRunsItsStepsInItsPod() throws {
        let scratch = try Scratch()
        let (server, _) = try Self.registryWithTinyModel(scratch)
        defer { server.stop() }

        let objects = try kubernetesObjects(repositoryRoot.appendingPathComponent("deploy/backup-cronjob.yaml"))
        let cronJob = try KubernetesDeployTests.object(objects, kind: "CronJob", name: "modelreg-backup")
        let pod = value(cronJob, "spec", "jobTemplate", "spec", "template", "spec")
        let steps = try Self.containers(
            pod, secrets: ["modelreg-backup-token": server.adminToken], environment: ["MODELREG_URL": server.url])
        try #require(steps.map(\.name) == ["backup", "prune", "verify"], "\(steps.map(\.name))")
        let sandbox = try PodSandbox(scratch: scratch.root, volumes: try Self.volumes(pod))
        for step in steps {
            #expect(step.readOnlyRoot && step.uid == 10001, "\(step.name) runs unprivileged under a read-only root")
            let result = try step.run(in: sandbox)
            #expect(result.status == 0, "\(step.name): \(result)")
        }
        // The repository on the volume restores, outside the pod, into the registry that was backed up.
        let restored = scratch.url("restored")
        let restore = try modelreg([
            "restore", "--from", sandbox.hostPath("/backups/modelreg"), "--data", restored.path,
        ])
        #expect(restore.status == 0, "\(restore)")
    }
}
