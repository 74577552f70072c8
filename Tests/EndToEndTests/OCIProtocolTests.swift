import Foundation
import ModelRegistryCore
import Testing

/// The OCI Distribution API under `/v2/`, driven by real clients: skopeo (inspect, copy to a directory and to
/// an OCI layout), the oras Python client, and curl for the spec's statuses, headers and errors. Documents are
/// checked against the OCI image-spec and ModelPack JSON schemas (Schemas/).
@Suite struct OCIProtocolTests {
    /// A registry holding org/oci: version 1 (`prod`), version 2 with a default and an `awq-int4` variant.
    struct Fixture {
        let scratch: Scratch
        let server: ServerProcess
        let first: URL
        let second: URL
        let quantized: URL

        init(extraArguments: [String] = []) throws {
            scratch = try Scratch()
            server = try ServerProcess(data: scratch.url("data"), extraArguments: extraArguments)
            first = scratch.url("first")
            second = scratch.url("second")
            quantized = scratch.url("quantized")
            try TestModel.write(to: first, seed: 1)
            try TestModel.write(to: second, seed: 2)
            try InspectionTests.writeAWQ(to: quantized)
            for (directory, arguments) in [
                (first, ["org/oci:1"]), (second, ["org/oci:2"]),
                (quantized, ["org/oci:2", "--variant", "awq-int4"]),
            ] {
                try run(["push", directory.path] + arguments)
            }
            try run(["alias", "set", "org/oci", "prod", "1"])
        }

        func run(_ arguments: [String]) throws {
            let result = try modelreg(arguments, environment: server.environment)
            try #require(result.status == 0, "\(result)")
        }

        /// `host:port`, as image references name the registry.
        var host: String { String(server.url.dropFirst("http://".count)) }

        func skopeo(_ arguments: [String]) throws -> CommandResult {
            try CommandProcess(
                ["skopeo"] + arguments, environment: clientHome, in: scratch.root,
                executable: URL(fileURLWithPath: "/usr/bin/env")
            ).wait()
        }

        /// A home of the test's own for skopeo and oras: they read and write credentials under $HOME
        /// (`.docker/config.json`), which tests running at once would otherwise share half-written.
        var clientHome: [String: String] {
            [
                "HOME": scratch.root.path, "DOCKER_CONFIG": scratch.url(".docker").path,
                "REGISTRY_AUTH_FILE": scratch.url("auth.json").path,
            ]
        }

        /// skopeo's options for reading from the registry with the admin token as a password.
        var credentials: [String] { ["--tls-verify=false", "--creds", "modelreg:\(server.adminToken)"] }

        func request(
            _ path: String, method: String = "GET", headers: [String] = [], body: Data? = nil, token: String? = nil
        ) throws -> HTTPAnswer {
            try HTTPAnswer.fetch(
                path.hasPrefix("http") ? path : server.url + path, method: method,
                headers: headers + ["Authorization: Bearer \(token ?? server.adminToken)"], body: body, in: scratch)
        }

        /// The manifest a tag or digest names, as served.
        func manifest(_ reference: String) throws -> HTTPAnswer {
            let answer = try request("/v2/org/oci/manifests/\(reference)")
            try #require(answer.status == 200, "\(answer)")
            return answer
        }
    }

    /// What curl received.
    struct HTTPAnswer: CustomStringConvertible {
        let status: Int
        let headers: [String: String]
        let body: Data

        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var errorCode: String? { ((json["errors"] as? [[String: Any]])?.first)?["code"] as? String }
        var description: String { "\(status) \(headers)\n\(text.prefix(2000))" }

        /// `body` is sent as it is (`--data-binary`), with `Content-Length` unless a header asks for chunks.
        static func fetch(
            _ url: String, method: String, headers: [String], body sent: Data? = nil, in scratch: Scratch
        ) throws -> HTTPAnswer {
            let id = UUID().uuidString
            let head = scratch.url("head-\(id)")
            let body = scratch.url("body-\(id)")
            var arguments = ["-s", "-X", method, "-D", head.path, "-o", body.path, "-w", "%{http_code}"]
            if method == "HEAD" { arguments = ["-s", "-I", "-D", head.path, "-o", body.path, "-w", "%{http_code}"] }
            for header in headers { arguments += ["-H", header] }
            if let sent {
                let file = scratch.url("sent-\(id)")
                try sent.write(to: file)
                arguments += ["--data-binary", "@\(file.path)"]
                if !headers.contains(where: { $0.lowercased().hasPrefix("content-type") }) {
                    arguments += ["-H", "Content-Type: application/octet-stream"]
                }
            }
            let result = try CommandProcess(
                ["curl"] + arguments + [url], executable: URL(fileURLWithPath: "/usr/bin/env")
            ).wait()
            var fields: [String: String] = [:]
            for line in ((try? String(contentsOf: head, encoding: .utf8)) ?? "").split(separator: "\r\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                    .trimmingCharacters(in: .whitespaces)
            }
            return HTTPAnswer(
                status: Int(result.stdout) ?? 0, headers: fields, body: (try? Data(contentsOf: body)) ?? Data())
        }
    }

    /// A pushed directory's files: relative path to sha256.
    static func files(_ root: URL) throws -> [String: String] {
        try snapshot(root).mapValues { Digest.of($0.0).hex }
    }

    /// The files a `dir:` copy of an artifact holds, by the path each layer's title names.
    static func filesOfCopy(_ directory: URL) throws -> [String: String] {
        let manifest =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: directory.appendingPathComponent("manifest.json"))) as? [String: Any]
        var files: [String: String] = [:]
        for layer in manifest?["layers"] as? [[String: Any]] ?? [] {
            let digest = try Digest(parsing: layer["digest"] as? String ?? "")
            let title = (layer["annotations"] as? [String: String])?["org.opencontainers.image.title"] ?? ""
            let bytes = try Data(contentsOf: directory.appendingPathComponent(digest.hex))
            #expect(Digest.of(bytes) == digest, "layer \(title) holds other bytes than its digest says")
            files[title] = digest.hex
        }
        return files
    }

    @Test func skopeoCopiesAnArtifactWhoseLayersAreTheFiles() throws {
        let fixture = try Fixture()
        let raw = try fixture.skopeo(
            ["inspect", "--raw"] + fixture.credentials + ["docker://\(fixture.host)/org/oci:prod"])
        try #require(raw.status == 0, "\(raw)")
        let manifest = try JSONSerialization.jsonObject(with: Data(raw.stdout.utf8)) as? [String: Any]
        #expect(manifest?["artifactType"] as? String == "application/vnd.cncf.model.manifest.v1+json")
        #expect(manifest?["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")

        // The password of Basic credentials, and a bearer token, each reach every file.
        for (reference, options, pushed) in [
            ("prod", fixture.credentials, fixture.first),
            ("2__awq-int4", ["--tls-verify=false", "--registry-token", fixture.server.adminToken], fixture.quantized),
        ] {
            let out = fixture.scratch.url("copy-\(reference)")
            let copy = try fixture.skopeo(
                ["copy"]  // A token may hold "--": only the options are renamed.
                    + options.map { $0.hasPrefix("--") ? "--src-" + $0.dropFirst(2) : $0 }
                    + ["docker://\(fixture.host)/org/oci:\(reference)", "dir:\(out.path)"])
            try #require(copy.status == 0, "\(copy)")
            #expect(try Self.filesOfCopy(out) == (try Self.files(pushed)), "\(reference)")
        }

        let anonymous = try fixture.skopeo(
            ["inspect", "--raw", "--tls-verify=false", "docker://\(fixture.host)/org/oci:prod"])
        #expect(anonymous.status != 0 && anonymous.stderr.contains("unauthorized"), "\(anonymous)")
    }

    @Test func orasPullsTheModelsFilesByTheirTitles() throws {
        let fixture = try Fixture()
        let out = fixture.scratch.url("oras")
        let pull = try CommandProcess(
            [
                "python3", "-c",
                """
                import sys, oras.client
                client = oras.client.OrasClient(hostname=sys.argv[1], insecure=True)
                client.login(username="modelreg", password=sys.argv[2], hostname=sys.argv[1])
                client.pull(target=sys.argv[1] + "/org/oci:2", outdir=sys.argv[3])
                """, fixture.host, fixture.server.adminToken, out.path,
            ], environment: fixture.clientHome, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(pull.status == 0, "\(pull)")
        #expect(try Self.files(out) == (try Self.files(fixture.second)))
    }

    @Test func tagsNameEveryReleaseAndFollowAnAliasAtOnce() throws {
        let fixture = try Fixture()
        let list = try fixture.request("/v2/org/oci/tags/list")
        #expect(list.status == 200)
        #expect(list.json["name"] as? String == "org/oci")
        #expect(
            list.json["tags"] as? [String] == ["1", "1__default", "2", "2__awq-int4", "2__default", "latest", "prod"])

        // Pages of two, each linking the next, together the whole list.
        var tags: [String] = []
        var next: String? = "/v2/org/oci/tags/list?n=2"
        while let path = next {
            let page = try fixture.request(path)
            try #require(page.status == 200, "\(page)")
            tags += page.json["tags"] as? [String] ?? []
            next = page.headers["link"]?.firstMatch(of: /<([^>]+)>; rel="next"/).map { String($0.1) }
            try #require(tags.count <= 7)
        }
        #expect(tags == list.json["tags"] as? [String])

        let first = try fixture.manifest("1")
        let second = try fixture.manifest("2")
        #expect(try fixture.manifest("prod").body == first.body)
        #expect(try fixture.manifest("latest").body == second.body)
        try fixture.run(["alias", "set", "org/oci", "prod", "2"])
        let moved = try fixture.manifest("prod")
        #expect(moved.body == second.body, "an alias move changes its tag at once")

        // A digest names the same bytes forever, by GET and HEAD alike.
        let digest = try #require(first.headers["docker-content-digest"])
        #expect(digest == Digest.of(first.body).description)
        #expect(try fixture.manifest(digest).body == first.body)
        let head = try fixture.request("/v2/org/oci/manifests/\(digest)", method: "HEAD")
        #expect(head.status == 200 && head.headers["content-length"] == String(first.body.count))
        #expect(head.headers["docker-content-digest"] == digest)
        #expect(head.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json")
    }

    @Test func theRunnableImagePlacesTheFilesUnderModels() throws {
        let fixture = try Fixture()
        // The layer's digest is learned once the cache image builder has hashed it, just after the alias move.
        var index = try fixture.request("/v2/org/oci/manifests/prod__modelcar")
        for _ in 0..<100 where index.status == 404 {
            #expect(index.errorCode == "MANIFEST_UNKNOWN" && index.text.contains("retry"), "\(index)")
            usleep(100_000)
            index = try fixture.request("/v2/org/oci/manifests/prod__modelcar")
        }
        try #require(index.status == 200, "\(index)")
        #expect(index.headers["content-type"] == "application/vnd.oci.image.index.v1+json")

        let inspect = try fixture.skopeo(
            ["inspect"] + fixture.credentials + ["docker://\(fixture.host)/org/oci:prod__modelcar"])
        try #require(inspect.status == 0, "\(inspect)")
        let described = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(described?["Os"] as? String == "linux")
        #expect((described?["Layers"] as? [String])?.count == 1)

        for architecture in ["amd64", "arm64"] {
            let copied = fixture.scratch.url("image-\(architecture)")
            let copy = try fixture.skopeo(
                [
                    "copy", "--override-arch", architecture, "--src-tls-verify=false", "--src-creds",
                    "modelreg:\(fixture.server.adminToken)", "docker://\(fixture.host)/org/oci:prod__modelcar",
                    "dir:\(copied.path)",
                ])
            try #require(copy.status == 0, "\(copy)")
            func document(_ digest: Any?) throws -> [String: Any] {
                let hex = (digest as? String ?? "").dropFirst("sha256:".count)
                return try JSONSerialization.jsonObject(
                    with: Data(contentsOf: copied.appendingPathComponent(String(hex)))) as? [String: Any] ?? [:]
            }
            let manifest =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: copied.appendingPathComponent("manifest.json"))) as? [String: Any] ?? [:]
            let config = try document((manifest["config"] as? [String: Any])?["digest"])
            #expect(config["architecture"] as? String == architecture)
            let layers = manifest["layers"] as? [[String: Any]] ?? []
            try #require(layers.count == 1)
            #expect(layers[0]["mediaType"] as? String == "application/vnd.oci.image.layer.v1.tar")
            let layer = layers[0]["digest"] as? String ?? ""
            #expect((config["rootfs"] as? [String: Any])?["diff_ids"] as? [String] == [layer])
            let root = fixture.scratch.url("rootfs-\(architecture)")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            let archive = copied.appendingPathComponent(String(layer.dropFirst("sha256:".count)))
            #expect(Digest.of(try Data(contentsOf: archive)).description == layer)
            let extract = try shell("tar -xf '\(archive.path)' -C '\(root.path)'")
            try #require(extract.status == 0, "\(extract.output)")
            #expect(try Self.files(root.appendingPathComponent("models")) == (try Self.files(fixture.first)))
            #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["models"])
        }
    }

    /// skopeo copies an artifact out of the registry and back in under a new model: the copy is a variant like any
    /// other (inspected, pulled by modelreg), and the registry serves the manifest skopeo wrote, byte for byte.
    @Test func skopeoCopiesAnArtifactIntoTheRegistry() throws {
        let fixture = try Fixture()
        let copied = fixture.scratch.url("copied")
        let out = try fixture.skopeo(
            [
                "copy", "--src-tls-verify=false", "--src-creds", "modelreg:\(fixture.server.adminToken)",
                "docker://\(fixture.host)/org/oci:2", "dir:\(copied.path)",
            ])
        try #require(out.status == 0, "\(out)")
        for tag in ["1", "1__copy"] {
            let push = try fixture.skopeo(
                [
                    "copy", "--dest-tls-verify=false", "--dest-creds", "modelreg:\(fixture.server.adminToken)",
                    "dir:\(copied.path)", "docker://\(fixture.host)/org/copied:\(tag)",
                ])
            try #require(push.status == 0, "\(push)")
        }
        let sent = try Data(contentsOf: copied.appendingPathComponent("manifest.json"))
        let served = try fixture.request("/v2/org/copied/manifests/1")
        #expect(served.body == sent, "the manifest as skopeo wrote it")
        #expect(served.headers["docker-content-digest"] == Digest.of(sent).description)
        #expect(try fixture.request("/v2/org/copied/manifests/\(Digest.of(sent))").body == sent)

        let pulled = fixture.scratch.url("pulled")
        for variant in ["default", "copy"] {
            let pull = try modelreg(
                ["pull", "org/copied:1", "--variant", variant, "--dest", pulled.appendingPathComponent(variant).path],
                environment: fixture.server.environment)
            try #require(pull.status == 0, "\(pull)")
            #expect(try Self.files(pulled.appendingPathComponent(variant)) == (try Self.files(fixture.second)))
        }
        // Inspected at the push, as `modelreg push` inspects.
        let manifest = try fixture.request("/v1/models/org/copied/manifests/:1")
        let metadata = manifest.json["metadata"] as? [String: Any]
        #expect(metadata?["architecture"] as? String == "LlamaForCausalLM", "\(manifest)")
        #expect((metadata?["parameterCount"] as? Int ?? 0) > 0, "\(manifest)")

        // Pushing the same again is a no-op; other files under a published tag are refused.
        let again = try fixture.skopeo(
            [
                "copy", "--dest-tls-verify=false", "--dest-creds", "modelreg:\(fixture.server.adminToken)",
                "dir:\(copied.path)", "docker://\(fixture.host)/org/copied:1",
            ])
        #expect(again.status == 0, "\(again)")
        let other = try fixture.skopeo(
            [
                "copy", "--src-tls-verify=false", "--src-creds", "modelreg:\(fixture.server.adminToken)",
                "--dest-tls-verify=false", "--dest-creds", "modelreg:\(fixture.server.adminToken)",
                "docker://\(fixture.host)/org/oci:1", "docker://\(fixture.host)/org/copied:1",
            ])
        #expect(other.status != 0 && other.stderr.lowercased().contains("denied"), "\(other)")
    }

    /// oras pushes a ModelPack artifact of its own making (files with their media types, paths in annotations,
    /// chunked uploads), which becomes a version that pulls back the same files.
    @Test func orasPushesAModelPackArtifact() throws {
        let fixture = try Fixture()
        let model = fixture.first
        let files = try Self.files(model).keys.sorted()
        var annotations: [String: [String: String]] = [:]
        for path in files { annotations[path] = ["org.cncf.model.filepath": path] }
        let annotationFile = fixture.scratch.url("annotations.json")
        try JSONSerialization.data(withJSONObject: annotations).write(to: annotationFile)
        let config = fixture.scratch.url("model-config.json")
        try Data(#"{"descriptor":{"name":"pushed"},"config":{},"modelfs":{"type":"layers","diffIds":[]}}"#.utf8)
            .write(to: config)
        let push = try CommandProcess(
            [
                "python3", "-c",
                """
                import json, sys, oras.client
                host, token, annotations, config, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
                client = oras.client.OrasClient(hostname=host, insecure=True)
                client.login(username="modelreg", password=token, hostname=host)
                kind = lambda f: "weight" if f.endswith(".safetensors") else "doc" if f.endswith(".md") else "weight.config"
                client.push(target=host + "/org/pushed:1", files=[f + ":application/vnd.cncf.model." + kind(f) + ".v1.raw" for f in files],
                            manifest_config=config + ":application/vnd.cncf.model.config.v1+json",
                            annotation_file=annotations, do_chunked=True, chunk_size=3000, disable_path_validation=True)
                """, fixture.host, fixture.server.adminToken, annotationFile.path, config.path,
            ] + files, environment: fixture.clientHome, in: model, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(push.status == 0, "\(push)")
        let pulled = fixture.scratch.url("pulled")
        let pull = try modelreg(
            ["pull", "org/pushed:1", "--dest", pulled.path], environment: fixture.server.environment)
        try #require(pull.status == 0, "\(pull)")
        #expect(try Self.files(pulled) == (try Self.files(model)))
    }

    /// A ModelPack artifact of tar layers (plain, gzip and zstd, entries as GNU tar writes them) and a KitOps
    /// ModelKit (its Kitfile as the config, the model's directory in one tar+gzip layer), pushed by oras, become
    /// versions whose files are the archives' files; their manifests and layers are served as pushed, and the
    /// layers outlive garbage collection while the version is there.
    @Test func tarLayersOfModelPackAndKitOpsBecomeFiles() throws {
        let fixture = try Fixture()
        let model = fixture.first
        let layers = fixture.scratch.url("layers")
        let kit = fixture.scratch.url("kit")
        try FileManager.default.createDirectory(at: layers, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: kit, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: model, to: kit.appendingPathComponent("model"))
        let others = try FileManager.default.contentsOfDirectory(atPath: model.path)
            .filter { $0 != "model.safetensors" && $0 != "serving" }.sorted()
        for command in [
            ["tar", "-cf", "\(layers.path)/weights.tar", "-C", model.path, "model.safetensors"],
            ["tar", "--zstd", "-cf", "\(layers.path)/serving.tar.zst", "-C", model.path, "serving"],
            ["tar", "-czf", "\(layers.path)/configs.tar.gz", "-C", model.path] + others.map { "./\($0)" },
            ["tar", "-czf", "\(layers.path)/kit-model.tar.gz", "-C", kit.path, "model"],
        ] {
            let made = try CommandProcess(command, executable: URL(fileURLWithPath: "/usr/bin/env")).wait()
            try #require(made.status == 0, "\(made)")
        }
        try Data(#"{"descriptor":{"name":"tars"},"config":{},"modelfs":{"type":"layers","diffIds":[]}}"#.utf8)
            .write(to: layers.appendingPathComponent("config.json"))
        try Data(#"{"manifestVersion":"1.0.0","package":{"name":"kit"},"model":{"name":"kit","path":"model"}}"#.utf8)
            .write(to: layers.appendingPathComponent("kitfile.json"))
        let push = try CommandProcess(
            [
                "python3", "-c",
                """
                import sys, oras.client
                host, token = sys.argv[1], sys.argv[2]
                client = oras.client.OrasClient(hostname=host, insecure=True)
                client.login(username="modelreg", password=token, hostname=host)
                model = "application/vnd.cncf.model."
                client.push(target=host + "/org/tars:1",
                            files=["weights.tar:" + model + "weight.v1.tar",
                                   "serving.tar.zst:" + model + "weight.config.v1.tar+zstd",
                                   "configs.tar.gz:" + model + "weight.config.v1.tar+gzip"],
                            manifest_config="config.json:" + model + "config.v1+json")
                client.push(target=host + "/org/kit:1",
                            files=["kit-model.tar.gz:application/vnd.kitops.modelkit.model.v1.tar+gzip"],
                            manifest_config="kitfile.json:application/vnd.kitops.modelkit.config.v1+json")
                """, fixture.host, fixture.server.adminToken,
            ], environment: fixture.clientHome, in: layers, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(push.status == 0, "\(push)")

        let expected = try Self.files(model)
        for (name, prefix) in [("org/tars", ""), ("org/kit", "model/")] {
            let pulled = fixture.scratch.url("pulled-\(name.dropFirst(4))")
            let pull = try modelreg(
                ["pull", "\(name):1", "--dest", pulled.path], environment: fixture.server.environment)
            try #require(pull.status == 0, "\(pull)")
            #expect(
                try Self.files(pulled) == Dictionary(uniqueKeysWithValues: expected.map { (prefix + $0, $1) }),
                "\(name)")
        }

        // Served as pushed: the manifest names the tar layers, which are kept through a collection.
        let gc = try fixture.request("/v1/admin/gc?grace=0s", method: "POST")
        #expect(gc.status == 200, "\(gc)")
        let manifest = try fixture.request("/v2/org/kit/manifests/1")
        let layer = try #require((manifest.json["layers"] as? [[String: Any]])?.first)
        let tar = try Data(contentsOf: layers.appendingPathComponent("kit-model.tar.gz"))
        #expect(layer["digest"] as? String == Digest.of(tar).description, "\(manifest)")
        #expect(
            (manifest.json["config"] as? [String: Any])?["mediaType"] as? String
                == "application/vnd.kitops.modelkit.config.v1+json")
        let blob = try fixture.request("/v2/org/kit/blobs/\(Digest.of(tar))")
        #expect(blob.status == 200 && blob.body == tar, "\(blob.status)")
    }

    /// A tar layer holding what no model's file can be (a path out of the model, a link, a device) or that is no
    /// archive at all is refused whole, naming the layer and the entry; nothing is published.
    @Test func unsafeTarLayersAreRefused() throws {
        let fixture = try Fixture()
        let script = """
            import io, sys, tarfile
            def write(name, entries):
                with tarfile.open(name, "w") as tar:
                    for entry, kind in entries:
                        info = tarfile.TarInfo(entry)
                        if kind == "link":
                            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                            tar.addfile(info)
                        elif kind == "device":
                            info.type = tarfile.CHRTYPE
                            tar.addfile(info)
                        else:
                            info.size = 2
                            tar.addfile(info, io.BytesIO(b"{}"))
            write("escape.tar", [("config.json", "file"), ("../escape.json", "file")])
            write("absolute.tar", [("/etc/cron.d/x", "file")])
            write("link.tar", [("config.json", "link")])
            write("device.tar", [("null", "device")])
            """
        let made = try CommandProcess(
            ["python3", "-c", script], in: fixture.scratch.root, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(made.status == 0, "\(made)")
        let config = Data(#"{"descriptor":{"name":"x"},"config":{},"modelfs":{"type":"layers","diffIds":[]}}"#.utf8)
        let cases: [(String, Data, String)] = [
            ("escape", try Data(contentsOf: fixture.scratch.url("escape.tar")), "../escape.json"),
            ("absolute", try Data(contentsOf: fixture.scratch.url("absolute.tar")), "/etc/cron.d/x"),
            ("link", try Data(contentsOf: fixture.scratch.url("link.tar")), "link"),
            ("device", try Data(contentsOf: fixture.scratch.url("device.tar")), "device"),
            ("not a tar", Data("{}".utf8), "not a tar archive"),
        ]
        for blob in [config] + cases.map(\.1) {
            let upload = try fixture.request(
                "/v2/org/unsafe/blobs/uploads/?digest=\(Digest.of(blob))", method: "POST", body: blob)
            try #require(upload.status == 201, "\(upload)")
        }
        for (what, tar, message) in cases {
            let manifest: [String: Any] = [
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": [
                    "mediaType": "application/vnd.cncf.model.config.v1+json", "digest": Digest.of(config).description,
                    "size": config.count,
                ],
                "layers": [
                    [
                        "mediaType": "application/vnd.cncf.model.weight.config.v1.tar",
                        "digest": Digest.of(tar).description, "size": tar.count,
                    ]
                ],
            ]
            let answer = try fixture.request(
                "/v2/org/unsafe/manifests/1", method: "PUT",
                headers: ["Content-Type: application/vnd.oci.image.manifest.v1+json"],
                body: try JSONSerialization.data(withJSONObject: manifest))
            #expect(
                answer.status == 400 && answer.errorCode == "MANIFEST_INVALID" && answer.text.contains("layer 0")
                    && answer.text.contains(message), "\(what): \(answer)")
        }
        #expect(try fixture.request("/v2/org/unsafe/tags/list").status == 404)
    }

    /// What is not a model is refused with UNSUPPORTED, saying what is taken; a model under an alias or a digest
    /// is refused too, and so is a manifest whose blobs were not pushed.
    @Test func whatIsNotAModelIsRefused() throws {
        let fixture = try Fixture()
        let blob = Data("x".utf8)
        #expect(
            try fixture.request("/v2/org/oci/blobs/uploads/?digest=\(Digest.of(blob))", method: "POST", body: blob)
                .status == 201)
        func manifest(config: String, layer: String, artifactType: String? = nil, subject: Bool = false) -> Data {
            var fields: [String: Any] = [
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": ["mediaType": config, "digest": Digest.of(blob).description, "size": 1],
                "layers": [
                    [
                        "mediaType": layer, "digest": Digest.of(blob).description, "size": 1,
                        "annotations": ["org.opencontainers.image.title": "x.json"],
                    ]
                ],
            ]
            if let artifactType { fields["artifactType"] = artifactType }
            if subject {
                fields["subject"] = [
                    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest.of(blob).description,
                    "size": 1,
                ]
            }
            return try! JSONSerialization.data(withJSONObject: fields)
        }
        let type = ["Content-Type: application/vnd.oci.image.manifest.v1+json"]
        let modelConfig = "application/vnd.cncf.model.config.v1+json"
        let raw = "application/vnd.cncf.model.weight.config.v1.raw"
        let cases: [(String, [String], Data, Int, String, String)] = [
            (
                "an image", type,
                manifest(
                    config: "application/vnd.oci.image.config.v1+json",
                    layer: "application/vnd.oci.image.layer.v1.tar+gzip"), 400, "UNSUPPORTED", "container image"
            ),
            (
                "an image layer", type, manifest(config: modelConfig, layer: "application/vnd.oci.image.layer.v1.tar"),
                400, "UNSUPPORTED", "tar archives of them"
            ),
            (
                "a referrer", type, manifest(config: modelConfig, layer: raw, subject: true), 400, "UNSUPPORTED",
                "subject"
            ),
            (
                "an index", ["Content-Type: application/vnd.oci.image.index.v1+json"],
                Data(#"{"schemaVersion":2,"manifests":[]}"#.utf8), 400, "UNSUPPORTED", "models"
            ),
            ("not JSON", type, Data("nope".utf8), 400, "MANIFEST_INVALID", "not an OCI image manifest"),
        ]
        for (what, headers, body, status, code, message) in cases {
            let answer = try fixture.request("/v2/org/new/manifests/1", method: "PUT", headers: headers, body: body)
            #expect(
                answer.status == status && answer.errorCode == code && answer.text.contains(message),
                "\(what): \(answer)")
        }
        let model = manifest(
            config: modelConfig, layer: raw, artifactType: "application/vnd.cncf.model.manifest.v1+json")
        let alias = try fixture.request("/v2/org/oci/manifests/prod", method: "PUT", headers: type, body: model)
        #expect(alias.status == 409 && alias.errorCode == "DENIED" && alias.text.contains("alias"), "\(alias)")
        let byDigest = try fixture.request(
            "/v2/org/new/manifests/\(Digest.of(model))", method: "PUT", headers: type, body: model)
        #expect(byDigest.status == 400 && byDigest.errorCode == "UNSUPPORTED", "\(byDigest)")
        let absent = String(decoding: model, as: UTF8.self).replacingOccurrences(
            of: Digest.of(blob).hex, with: Digest.of(Data("absent".utf8)).hex)
        let missing = try fixture.request(
            "/v2/org/new/manifests/1", method: "PUT", headers: type, body: Data(absent.utf8))
        #expect(missing.status == 400 && missing.errorCode == "MANIFEST_BLOB_UNKNOWN", "\(missing)")
        let taken = try fixture.request("/v2/org/new/manifests/1", method: "PUT", headers: type, body: model)
        #expect(taken.status == 201, "\(taken)")
        let list = try fixture.request("/v2/org/new/tags/list")
        #expect(list.json["tags"] as? [String] == ["1", "1__default", "latest"], "\(list)")
    }

    /// Signatures pushed with a subject (as cosign and notation push them to an OCI 1.1 registry) are listed by the
    /// referrers API, filtered by artifact type, served by digest, and go with their subject's version, after
    /// which garbage collection takes their blobs.
    @Test func referrersAreListedAndGoWithTheirSubject() throws {
        let fixture = try Fixture()
        let subject = try fixture.manifest("1")
        let subjectDigest = try #require(subject.headers["docker-content-digest"])
        let empty = Data("{}".utf8)
        func upload(_ data: Data) throws {
            let post = try fixture.request(
                "/v2/org/oci/blobs/uploads/?digest=\(Digest.of(data))", method: "POST", body: data)
            try #require(post.status == 201, "\(post)")
        }
        func signature(_ artifactType: String, _ text: String, subject digest: String, size: Int) throws -> Data {
            let payload = Data(text.utf8)
            try upload(payload)
            return try JSONSerialization.data(
                withJSONObject: [
                    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "artifactType": artifactType,
                    "config": [
                        "mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest.of(empty).description,
                        "size": 2,
                    ],
                    "layers": [
                        [
                            "mediaType": "application/octet-stream", "digest": Digest.of(payload).description,
                            "size": payload.count,
                        ]
                    ],
                    "subject": [
                        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                    ],
                    "annotations": ["org.opencontainers.image.created": "2026-12-04T10:00:00Z"],
                ], options: [.sortedKeys])
        }
        try upload(empty)
        let type = ["Content-Type: application/vnd.oci.image.manifest.v1+json"]
        let cosign = try signature(
            "application/vnd.dev.cosign.artifact.sig.v1+json", "cosign", subject: subjectDigest,
            size: subject.body.count)
        let notation = try signature(
            "application/vnd.cncf.notary.signature", "notation", subject: subjectDigest, size: subject.body.count)
        for document in [cosign, notation] {
            let put = try fixture.request(
                "/v2/org/oci/manifests/\(Digest.of(document))", method: "PUT", headers: type, body: document)
            #expect(put.status == 201 && put.headers["oci-subject"] == subjectDigest, "\(put)")
            #expect(try fixture.manifest(Digest.of(document).description).body == document)
        }
        let byTag = try fixture.request("/v2/org/oci/manifests/sig", method: "PUT", headers: type, body: cosign)
        #expect(byTag.status == 400 && byTag.errorCode == "UNSUPPORTED", "\(byTag)")
        let stranger = try signature(
            "application/vnd.example", "x", subject: Digest.of(Data("none".utf8)).description, size: 4)
        let orphan = try fixture.request(
            "/v2/org/oci/manifests/\(Digest.of(stranger))", method: "PUT", headers: type, body: stranger)
        #expect(orphan.status == 400 && orphan.errorCode == "MANIFEST_INVALID", "\(orphan)")

        let all = try fixture.request("/v2/org/oci/referrers/\(subjectDigest)")
        let listed = all.json["manifests"] as? [[String: Any]] ?? []
        #expect(
            listed.map { $0["digest"] as? String } == [Digest.of(cosign).description, Digest.of(notation).description],
            "\(all)")
        #expect(listed.first?["artifactType"] as? String == "application/vnd.dev.cosign.artifact.sig.v1+json")
        #expect(listed.first?["size"] as? Int == cosign.count)
        #expect((listed.first?["annotations"] as? [String: String])?["org.opencontainers.image.created"] != nil)
        #expect(all.headers["oci-filters-applied"] == nil)
        let filtered = try fixture.request(
            "/v2/org/oci/referrers/\(subjectDigest)?artifactType=application/vnd.cncf.notary.signature")
        #expect(
            (filtered.json["manifests"] as? [[String: Any]])?.map { $0["digest"] as? String } == [
                Digest.of(notation).description
            ])
        #expect(filtered.headers["oci-filters-applied"] == "artifactType")
        let notAType = try fixture.request("/v2/org/oci/referrers/\(subjectDigest)?artifactType=signature")
        #expect(
            notAType.status == 400 && notAType.errorCode == "UNSUPPORTED" && notAType.text.contains("media type"),
            "\(notAType)")

        // The subject's version goes (prod moves off it first); its referrers go with it, then their blobs.
        try fixture.run(["alias", "set", "org/oci", "prod", "2"])
        let delete = try fixture.request("/v1/models/org/oci/versions/1", method: "DELETE")
        try #require(delete.status == 200, "\(delete)")
        #expect(
            (try fixture.request("/v2/org/oci/referrers/\(subjectDigest)").json["manifests"] as? [Any])?.isEmpty == true
        )
        #expect(try fixture.request("/v2/org/oci/manifests/\(Digest.of(cosign))").status == 404)
        let gc = try fixture.request("/v1/admin/gc?grace=0s", method: "POST")
        #expect(gc.status == 200, "\(gc)")
        #expect(
            try fixture.request("/v2/org/oci/blobs/\(Digest.of(Data("cosign".utf8)))", method: "HEAD").status == 404)
    }

    /// The ModelPack config against the model-spec's schema; manifests, indexes and image configs against the
    /// image-spec's.
    @Test func everyDocumentFollowsItsSchema() throws {
        let fixture = try Fixture()
        var runnable = try fixture.request("/v2/org/oci/manifests/prod__modelcar")
        for _ in 0..<100 where runnable.status == 404 {
            usleep(100_000)
            runnable = try fixture.request("/v2/org/oci/manifests/prod__modelcar")
        }
        try #require(runnable.status == 200, "\(runnable)")
        var documents: [(schema: String, path: URL)] = []
        func keep(_ schema: String, _ answer: HTTPAnswer) throws {
            let path = fixture.scratch.url("document-\(documents.count).json")
            try answer.body.write(to: path)
            documents.append((schema, path))
        }
        func blob(_ digest: Any?) throws -> HTTPAnswer {
            let answer = try fixture.request("/v2/org/oci/blobs/\(digest as? String ?? "")")
            try #require(answer.status == 200, "\(answer)")
            #expect(Digest.of(answer.body).description == digest as? String)
            return answer
        }
        for tag in ["prod", "2", "2__awq-int4"] {
            let manifest = try fixture.manifest(tag)
            try keep("image-manifest-schema.json", manifest)
            try keep("model-config", try blob((manifest.json["config"] as? [String: Any])?["digest"]))
        }
        try keep("image-index-schema.json", runnable)
        for entry in runnable.json["manifests"] as? [[String: Any]] ?? [] {
            let manifest = try fixture.manifest(entry["digest"] as? String ?? "")
            try keep("image-manifest-schema.json", manifest)
            try keep("config-schema.json", try blob((manifest.json["config"] as? [String: Any])?["digest"]))
        }
        let schemas = repositoryRoot.appendingPathComponent("Tests/EndToEndTests/Schemas")
        let check = try CommandProcess(
            ["python3", "-c", Self.schemaCheck, schemas.path] + documents.flatMap { [$0.schema, $0.path.path] },
            executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        #expect(check.status == 0, "\(check)")
        #expect(check.stdout.split(separator: "\n").count == documents.count, "\(check)")
    }

    /// Validates each (schema, document) pair of its arguments; the image-spec's schemas refer to each other by
    /// file name relative to ids that differ, so each is found by the last part of the reference.
    static let schemaCheck = """
        import json, os, sys
        import jsonschema
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4
        root = sys.argv[1]
        spec = {name: json.load(open(os.path.join(root, "image-spec", name)))
                for name in os.listdir(os.path.join(root, "image-spec"))}
        registry = Registry(retrieve=lambda uri: Resource.from_contents(spec[uri.rsplit("/", 1)[-1]],
                                                                         default_specification=DRAFT4))
        model = json.load(open(os.path.join(root, "model-spec", "config-schema.json")))
        pairs = sys.argv[2:]
        for schema, path in zip(pairs[::2], pairs[1::2]):
            document = json.load(open(path))
            if schema == "model-config":
                jsonschema.Draft202012Validator(model, format_checker=jsonschema.FormatChecker()).validate(document)
            else:
                jsonschema.Draft4Validator(spec[schema], registry=registry).validate(document)
            print("valid", schema, path)
        """

    @Test func theTokenServiceAnswersTheBearerChallenge() throws {
        let fixture = try Fixture()
        let read = try modelreg(
            ["token", "create", "--name", "kubelet", "--scope", "read"], environment: fixture.server.environment)
        try #require(read.status == 0, "\(read)")
        let token = read.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let base = try HTTPAnswer.fetch(fixture.server.url + "/v2/", method: "GET", headers: [], in: fixture.scratch)
        #expect(base.status == 401 && base.errorCode == "UNAUTHORIZED", "\(base)")
        let challenge = try #require(base.headers["www-authenticate"])
        let realm = try #require(challenge.firstMatch(of: /Bearer realm="([^"]+)",service="modelreg"/)?.1)
        #expect(realm == fixture.server.url + "/v2/token")
        let scoped = try HTTPAnswer.fetch(
            fixture.server.url + "/v2/org/oci/manifests/prod", method: "GET", headers: [], in: fixture.scratch)
        #expect(scoped.headers["www-authenticate"]?.hasSuffix(#"scope="repository:org/oci:pull""#) == true, "\(scoped)")

        let basic = Data("modelreg:\(token)".utf8).base64EncodedString()
        let issued = try HTTPAnswer.fetch(
            String(realm) + "?service=modelreg&scope=repository:org/oci:pull", method: "GET",
            headers: ["Authorization: Basic \(basic)"], in: fixture.scratch)
        #expect(issued.status == 200, "\(issued)")
        let bearer = try #require(issued.json["token"] as? String)
        #expect(try fixture.request("/v2/", token: bearer).status == 200)
        #expect(try fixture.request("/v2/org/oci/manifests/prod", token: bearer).status == 200)

        // containerd's OAuth2 form.
        let oauth = try HTTPAnswer.fetch(
            String(realm), method: "POST",
            headers: ["Content-Type: application/x-www-form-urlencoded", "X-Form: 1"], in: fixture.scratch)
        #expect(oauth.status == 400 || oauth.status == 401, "\(oauth)")
        let form = try CommandProcess(
            [
                "curl", "-s", "-X", "POST", "--data-urlencode", "grant_type=password", "--data-urlencode", "username=x",
                "--data-urlencode", "password=\(token)", "--data-urlencode", "service=modelreg", String(realm),
            ],
            executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        let access = try JSONSerialization.jsonObject(with: Data(form.stdout.utf8)) as? [String: Any]
        #expect(access?["access_token"] as? String == token, "\(form)")

        let wrong = try HTTPAnswer.fetch(
            String(realm), method: "GET",
            headers: ["Authorization: Basic \(Data("x:not-a-token".utf8).base64EncodedString())"], in: fixture.scratch)
        #expect(wrong.status == 401 && wrong.errorCode == "UNAUTHORIZED", "\(wrong)")
        let revoked = try fixture.request("/v2/org/oci/tags/list", token: "not-a-token")
        #expect(revoked.status == 401 && revoked.errorCode == "UNAUTHORIZED", "\(revoked)")
    }

    @Test func anonymousReadServesPullsWithoutCredentials() throws {
        let fixture = try Fixture(extraArguments: ["--anonymous-read"])
        let base = try HTTPAnswer.fetch(fixture.server.url + "/v2/", method: "GET", headers: [], in: fixture.scratch)
        #expect(base.status == 200 && base.headers["docker-distribution-api-version"] == "registry/2.0", "\(base)")
        let out = fixture.scratch.url("anonymous")
        let copy = try fixture.skopeo(
            ["copy", "--src-tls-verify=false", "docker://\(fixture.host)/org/oci:1", "dir:\(out.path)"])
        try #require(copy.status == 0, "\(copy)")
        #expect(try Self.filesOfCopy(out) == (try Self.files(fixture.first)))
    }

    @Test func errorsAreTheSpecsErrors() throws {
        let fixture = try Fixture()
        let unknownTag = try fixture.request("/v2/org/oci/manifests/9")
        #expect(unknownTag.status == 404 && unknownTag.errorCode == "MANIFEST_UNKNOWN", "\(unknownTag)")
        let unknownModel = try fixture.request("/v2/org/none/manifests/1")
        #expect(unknownModel.status == 404 && unknownModel.errorCode == "NAME_UNKNOWN", "\(unknownModel)")
        let badName = try fixture.request("/v2/Org/oci/tags/list")
        #expect(badName.status == 400 && badName.errorCode == "NAME_INVALID", "\(badName)")
        let badDigest = try fixture.request("/v2/org/oci/blobs/sha256:abc")
        #expect(badDigest.status == 400 && badDigest.errorCode == "DIGEST_INVALID", "\(badDigest)")
        let unknownBlob = try fixture.request("/v2/org/oci/blobs/sha256:" + String(repeating: "0", count: 64))
        #expect(unknownBlob.status == 404 && unknownBlob.errorCode == "BLOB_UNKNOWN", "\(unknownBlob)")

        let manifest = try fixture.manifest("prod")
        let layer = try #require((manifest.json["layers"] as? [[String: Any]])?.last?["digest"] as? String)
        let whole = try fixture.request("/v2/org/oci/blobs/\(layer)")
        #expect(whole.status == 200 && whole.headers["docker-content-digest"] == layer)
        let part = try fixture.request("/v2/org/oci/blobs/\(layer)", headers: ["Range: bytes=1-10"])
        #expect(part.status == 206 && part.body == whole.body[1...10], "\(part)")
        let outside = try fixture.request(
            "/v2/org/oci/blobs/\(layer)", headers: ["Range: bytes=\(whole.body.count + 5)-"])
        #expect(outside.status == 416, "\(outside)")

        // Tags go with their versions (`modelreg delete`), blobs with garbage collection.
        for path in ["/v2/org/oci/manifests/1", "/v2/org/oci/blobs/\(layer)"] {
            let delete = try fixture.request(path, method: "DELETE")
            #expect(
                delete.status == 405 && delete.errorCode == "UNSUPPORTED" && delete.headers["allow"] != nil, "\(delete)"
            )
        }

        let referrers = try fixture.request("/v2/org/oci/referrers/\(layer)?artifactType=application/example")
        #expect(referrers.status == 200 && referrers.headers["oci-filters-applied"] == "artifactType", "\(referrers)")
        #expect(referrers.json["manifests"] as? [Any] != nil)
        #expect(referrers.headers["content-type"] == "application/vnd.oci.image.index.v1+json")
    }
}
