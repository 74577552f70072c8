import Foundation
import ModelRegistryCore
import TestServers
import Testing

/// The Hugging Face Hub protocol under `/hf`, driven by the real `huggingface_hub` (the installed 2.x, and a 1.x in
/// a virtual environment of its own): what `snapshot_download`, `hf_hub_download`, `model_info`, `list_repo_files`
/// and the `hf` CLI get for every kind of revision, what they skip on a rerun, and the errors they raise.
@Suite struct HubProtocolTests {
    /// The Hub client, `python3` with `HF_ENDPOINT` at a server's `/hf`, its token, and a home of its own.
    struct HubClient {
        let scratch: Scratch
        let server: ServerProcess

        /// Runs `script` with the Hub client pointed at the registry; its standard output parsed as JSON.
        func python<T: Decodable>(
            _ type: T.Type, _ script: String, token: String? = nil, python: String = "python3",
            endpoint: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> T {
            let result = try run(script, token: token, python: python, endpoint: endpoint)
            try #require(result.status == 0, "\(result)", sourceLocation: sourceLocation)
            let line = result.stdout.split(separator: "\n").last.map(String.init) ?? ""
            return try JSONDecoder().decode(T.self, from: Data(line.utf8))
        }

        func run(_ script: String, token: String? = nil, python: String = "python3", endpoint: String? = nil) throws
            -> CommandResult
        {
            try CommandProcess(
                [python, "-c", HubProtocolTests.prelude + script],
                environment: [
                    "HF_ENDPOINT": (endpoint ?? server.url) + "/hf", "HF_TOKEN": token ?? server.adminToken,
                    "HF_HOME": scratch.url("hf-home").path, "HF_HUB_DISABLE_TELEMETRY": "1",
                    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_ETAG_TIMEOUT": "30",
                ],
                in: scratch.root, executable: URL(fileURLWithPath: "/usr/bin/env")
            ).wait()
        }

    }

    /// A registry holding org/hub: version 1 (`prod`), version 2 with a default and an `awq-int4` variant.
    struct Fixture {
        let scratch: Scratch
        let server: ServerProcess
        /// The pushed directories: version 1, version 2's default variant, its awq-int4 variant.
        let first: URL
        let second: URL
        let quantized: URL

        init(extraArguments: [String] = [], scratch: Scratch? = nil) throws {
            let scratch = try scratch ?? Scratch()
            self.scratch = scratch
            server = try ServerProcess(data: scratch.url("data"), extraArguments: extraArguments)
            first = scratch.url("first")
            second = scratch.url("second")
            quantized = scratch.url("quantized")
            try TestModel.write(to: first, seed: 1)
            try TestModel.write(to: second, seed: 2)
            try InspectionTests.writeAWQ(to: quantized)
            try Data("---\nlicense: apache-2.0\nlanguage:\n- en\n---\n# Tiny\n\nA model card.\n".utf8).write(
                to: first.appendingPathComponent("README.md"))
            for (directory, arguments) in [
                (first, ["org/hub:1"]), (second, ["org/hub:2"]),
                (quantized, ["org/hub:2", "--variant", "awq-int4"]),
            ] {
                let push = try modelreg(["push", directory.path] + arguments, environment: server.environment)
                try #require(push.status == 0, "\(push)")
            }
            let alias = try modelreg(["alias", "set", "org/hub", "prod", "1"], environment: server.environment)
            try #require(alias.status == 0, "\(alias)")
        }

        var client: HubClient { HubClient(scratch: scratch, server: server) }

        func python<T: Decodable>(
            _ type: T.Type, _ script: String, token: String? = nil, python: String = "python3",
            endpoint: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> T {
            try client.python(
                type, script, token: token, python: python, endpoint: endpoint, sourceLocation: sourceLocation)
        }

        func run(_ script: String, token: String? = nil) throws -> CommandResult {
            try client.run(script, token: token)
        }

        /// The commit of a release (`org/hub:1`, `org/hub@prod`): the first 40 hex digits of its manifest's
        /// digest, as the registry's own API names it.
        func commit(_ reference: String) throws -> String {
            let suffix = reference.dropFirst("org/hub".count)
            let head = try shell(
                "curl -s -I -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/v1/models/org/hub/manifests/\(suffix)'"
            ).output
            let digest = try #require(head.firstMatch(of: /(?i)modelreg-digest: sha256:([0-9a-f]{64})/)?.1, "\(head)")
            return String(digest.prefix(40))
        }

        var bytesSent: Int {
            get throws {
                let metrics = try shell(
                    "curl -s -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/metrics'"
                ).output
                let line = metrics.split(separator: "\n").first { $0.hasPrefix("modelreg_blob_bytes_sent_total ") }
                return line.flatMap { Int(Double($0.split(separator: " ").last ?? "") ?? -1) } ?? 0
            }
        }
    }

    /// Python the scripts share: a directory's files by relative path with their sha256, the client's own
    /// bookkeeping (`.cache`) left out.
    static let prelude = """
        import hashlib, json, os, sys
        def tree(root):
            return {os.path.relpath(os.path.join(base, name), root):
                        hashlib.sha256(open(os.path.join(base, name), "rb").read()).hexdigest()
                    for base, _, names in os.walk(root) if ".cache" not in base.split(os.sep) for name in names}

        """

    static func hashes(_ directory: URL) throws -> [String: String] {
        try snapshot(directory).mapValues { Digest.of($0.0).hex }
    }

    struct Download: Decodable {
        let folder: String
        let files: [String: String]
    }

    /// Every spelling of a revision downloads the variant it names into the cache, in the snapshot folder named by
    /// its commit (the folder `modelreg fetch --layout hf` makes), and into a local directory, byte for byte.
    @Test func snapshotDownloadTakesEveryKindOfRevision() throws {
        let fixture = try Fixture()
        let firstCommit = try fixture.commit("org/hub:1")
        let cases: [(revision: String, directory: URL, reference: String)] = [
            ("prod", fixture.first, "org/hub@prod"), ("1", fixture.first, "org/hub:1"),
            (firstCommit, fixture.first, "org/hub:1"), ("main", fixture.second, "org/hub:2"),
            ("latest", fixture.second, "org/hub:2"), ("2", fixture.second, "org/hub:2"),
            ("2@awq-int4", fixture.quantized, "org/hub:2"),
        ]
        for (revision, directory, reference) in cases {
            let download = try fixture.python(
                Download.self,
                """
                from huggingface_hub import snapshot_download
                path = snapshot_download("org/hub", revision=sys.argv[1], cache_dir="cache")
                print(json.dumps({"folder": os.path.basename(path), "files": tree(path)}))
                """.replacingOccurrences(of: "sys.argv[1]", with: "\"\(revision)\""))
            #expect(download.files == (try Self.hashes(directory)), "revision \(revision)")
            if revision != "2@awq-int4" {
                #expect(download.folder == (try fixture.commit(reference)), "revision \(revision)")
            }
        }
        let quantizedCommit = try fixture.python(
            String.self,
            """
            from huggingface_hub import model_info
            print(json.dumps(model_info("org/hub", revision="2@awq-int4").sha))
            """)
        #expect(quantizedCommit != (try fixture.commit("org/hub:2")))

        // The folder `modelreg fetch --layout hf` makes has the same name.
        let fetched = fixture.scratch.url("fetched")
        let fetch = try modelreg(
            ["fetch", "org/hub@prod", "--dest", fetched.path, "--layout", "hf"], environment: fixture.server.environment
        )
        try #require(fetch.status == 0, "\(fetch)")
        #expect(
            try FileManager.default.contentsOfDirectory(
                atPath: fetched.appendingPathComponent("models--org--hub/snapshots").path) == [firstCommit])

        let local = try fixture.python(
            [String: String].self,
            """
            from huggingface_hub import snapshot_download
            print(json.dumps(tree(snapshot_download("org/hub", revision="prod", local_dir="local"))))
            """)
        #expect(local == (try Self.hashes(fixture.first)))
    }

    /// A second `snapshot_download`, into the cache or a local directory, downloads no byte: the registry sends
    /// nothing more.
    @Test func aRerunDownloadsNothing() throws {
        let fixture = try Fixture()
        let script = """
            from huggingface_hub import snapshot_download
            a = tree(snapshot_download("org/hub", revision="prod", cache_dir="cache"))
            b = tree(snapshot_download("org/hub", revision="prod", local_dir="local"))
            print(json.dumps(a == b))
            """
        #expect(try fixture.python(Bool.self, script))
        let sent = try fixture.bytesSent
        #expect(sent > 0)
        #expect(try fixture.python(Bool.self, script))
        #expect(try fixture.bytesSent == sent, "the rerun downloaded again")
    }

    /// Moving `prod` changes what `revision="prod"` downloads at once; a commit always names the same files; a
    /// deprecated version stays downloadable by name while `main` skips it.
    @Test func aliasMovesAndDeprecationsAreFollowedAndCommitsNeverChange() throws {
        let fixture = try Fixture()
        let firstCommit = try fixture.commit("org/hub:1")
        let download = """
            from huggingface_hub import snapshot_download
            print(json.dumps([tree(snapshot_download("org/hub", revision=r, cache_dir="cache")) for r in sys.argv[1:]]))
            """
        func files(_ revisions: [String]) throws -> [[String: String]] {
            let result = try fixture.run(
                download.replacingOccurrences(
                    of: "sys.argv[1:]", with: "[" + revisions.map { "\"\($0)\"" }.joined(separator: ", ") + "]"))
            try #require(result.status == 0, "\(result)")
            return try JSONDecoder().decode([[String: String]].self, from: Data(result.stdout.utf8))
        }
        #expect(try files(["prod"]) == [try Self.hashes(fixture.first)])
        let moved = try modelreg(["alias", "set", "org/hub", "prod", "2"], environment: fixture.server.environment)
        try #require(moved.status == 0, "\(moved)")
        #expect(try files(["prod", firstCommit]) == [try Self.hashes(fixture.second), try Self.hashes(fixture.first)])

        let deprecated = try modelreg(
            ["deprecate", "org/hub:2", "--reason", "regressed"], environment: fixture.server.environment)
        try #require(deprecated.status == 0, "\(deprecated)")
        #expect(try files(["main", "2"]) == [try Self.hashes(fixture.first), try Self.hashes(fixture.second)])
    }

    struct Info: Decodable {
        let sha: String
        let files: [String]
        let lfs: [String: Int?]
        let tags: [String]
        let one: String
        let card: [String: [String]]
    }

    /// `model_info`, `list_repo_files` and `hf_hub_download` see what the registry holds; weight files are LFS
    /// files with their sha256; the `hf download` CLI downloads a revision.
    @Test func infoListingsAndSingleFilesAsTheClientsReadThem() throws {
        let fixture = try Fixture()
        let info = try fixture.python(
            Info.self,
            """
            from huggingface_hub import model_info, list_repo_files, hf_hub_download
            info = model_info("org/hub", revision="2@awq-int4", files_metadata=True)
            one = hf_hub_download("org/hub", "config.json", revision="prod", cache_dir="cache")
            card = model_info("org/hub", revision="prod").card_data
            print(json.dumps({"sha": info.sha, "files": list_repo_files("org/hub", revision="prod"),
                              "lfs": {s.rfilename: (s.lfs.size if s.lfs else None) for s in info.siblings},
                              "tags": info.tags, "one": open(one).read(),
                              "card": {"license": [card.license], "language": card.language,
                                       "none": [str(info.card_data)]}}))
            """)
        #expect(info.sha.count == 40)
        #expect(info.files == (try Self.hashes(fixture.first)).keys.sorted())
        let weights = try Data(contentsOf: fixture.quantized.appendingPathComponent("model.safetensors")).count
        #expect(info.lfs["model.safetensors"] == .some(weights))
        #expect(info.lfs["config.json"] == .some(nil))
        #expect(info.tags.contains("safetensors") && info.tags.contains("awq") && info.tags.contains("4-bit"))
        // Version 1's README.md opens with metadata; version 2's variant has no model card.
        #expect(info.card == ["license": ["apache-2.0"], "language": ["en"], "none": ["None"]], "\(info.card)")
        #expect(
            info.one == (try String(contentsOf: fixture.first.appendingPathComponent("config.json"), encoding: .utf8)))

        let cli = try CommandProcess(
            ["hf", "download", "org/hub", "--revision", "prod", "--local-dir", fixture.scratch.url("cli").path],
            environment: [
                "HF_ENDPOINT": fixture.server.url + "/hf", "HF_TOKEN": fixture.server.adminToken,
                "HF_HOME": fixture.scratch.url("hf-home").path,
            ],
            executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(cli.status == 0, "\(cli)")
        var downloaded = try Self.hashes(fixture.scratch.url("cli"))
        downloaded = downloaded.filter { !$0.key.hasPrefix(".cache/") }
        #expect(downloaded == (try Self.hashes(fixture.first)))
    }

    /// Each failure is the exception the client raises for it on the Hub: an unknown model, revision or file, a
    /// wrong or missing token; an absent file is cached as absent at its commit, as transformers' probes for
    /// optional files need; writes are refused as the endpoint is read-only.
    @Test func failuresAreTheClientsOwnExceptions() throws {
        let fixture = try Fixture()
        let attempts = """
            from huggingface_hub import hf_hub_download, snapshot_download, try_to_load_from_cache, HfApi
            from huggingface_hub.file_download import _CACHED_NO_EXIST
            def attempt(call):
                try:
                    call()
                    return "ok"
                except Exception as error:
                    return type(error).__name__ + ": " + str(error).replace("\\n", " ")
            results = {
                "file": attempt(lambda: hf_hub_download("org/hub", "added_tokens.json", revision="prod", cache_dir="cache")),
                "revision": attempt(lambda: snapshot_download("org/hub", revision="nope", cache_dir="cache")),
                "repo": attempt(lambda: snapshot_download("org/none", revision="prod", cache_dir="cache")),
                "upload": attempt(lambda: HfApi().upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id="org/hub")),
            }
            results["cachedAbsent"] = str(try_to_load_from_cache("org/hub", "added_tokens.json", cache_dir="cache", revision="prod") is _CACHED_NO_EXIST)
            print(json.dumps(results))
            """
        let results = try fixture.python([String: String].self, attempts)
        #expect(results["file"]?.hasPrefix("RemoteEntryNotFoundError") == true, "\(results)")
        #expect(results["file"]?.contains("added_tokens.json") == true, "\(results)")
        #expect(results["cachedAbsent"] == "True", "\(results)")
        #expect(results["revision"]?.hasPrefix("RevisionNotFoundError") == true, "\(results)")
        #expect(results["repo"]?.hasPrefix("RepositoryNotFoundError") == true, "\(results)")
        #expect(results["upload"]?.contains("read-only") == true, "\(results)")

        for token in ["mrt_wrong", ""] {
            let refused = try fixture.python(
                [String: String].self,
                """
                from huggingface_hub import snapshot_download
                try:
                    snapshot_download("org/hub", revision="prod", cache_dir="cache2", token=os.environ["HF_TOKEN"] or False)
                    print(json.dumps({"error": "none"}))
                except Exception as error:
                    print(json.dumps({"error": type(error).__name__ + ": " + str(error).replace("\\n", " ")}))
                """, token: token)
            #expect(refused["error"]?.hasPrefix("RepositoryNotFoundError") == true, "token '\(token)': \(refused)")
            #expect(refused["error"]?.contains("401") == true, "token '\(token)': \(refused)")
        }
    }

    /// A listing longer than a page links its next page by an absolute URL back to this registry, which the
    /// client follows: `list_repo_files` and `list_repo_tree` see every file, recursively or one folder at a
    /// time. No answer carries an `X-Xet-*` header.
    @Test func longTreesArePagedAndEveryPageIsFollowed() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("many")
        let count = 150
        for index in 0..<count {
            let file = model.appendingPathComponent(String(format: "shards/%03d/part.txt", index))
            try FileManager.default.createDirectory(
                at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("part \(index)\n".utf8).write(to: file)
        }
        try Data("{}".utf8).write(to: model.appendingPathComponent("config.json"))
        let push = try modelreg(["push", model.path, "org/many:1", "--no-inspect"], environment: server.environment)
        try #require(push.status == 0, "\(push)")

        let page = try shell(
            "curl -s -D - -o /dev/null -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/hf/api/models/org/many/tree/1?recursive=true'"
        ).output
        #expect(
            page.contains("\(server.url)/hf/api/models/org/many/tree/1?recursive=true&cursor=100>; rel=\"next\""),
            "\(page)")
        // Past the end, even beyond what a 64-bit integer holds (the document allows any integer): an empty page.
        for cursor in ["100000", "85004827124683334215760311484416"] {
            let past = try shell(
                "curl -s -w ' %{http_code}' -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/hf/api/models/org/many/tree/1?cursor=\(cursor)'"
            ).output
            #expect(past == "[] 200", "a cursor past the end is an empty page: \(past)")
        }
        let negative = try shell(
            "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/hf/api/models/org/many/tree/1?cursor=-1'"
        ).output
        #expect(negative == "400", "a cursor that is no position: \(negative)")
        let head = try shell(
            "curl -s -I -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/hf/org/many/resolve/1/config.json'"
        ).output
        #expect(head.lowercased().contains("x-repo-commit:") && !head.lowercased().contains("x-xet"), "\(head)")

        struct Listing: Decodable {
            let files: [String]
            let tree: Int
            let top: [String]
        }
        let listing = try HubClient(scratch: scratch, server: server).python(
            Listing.self,
            """
            from huggingface_hub import HfApi
            api = HfApi()
            print(json.dumps({"files": api.list_repo_files("org/many", revision="1"),
                              "tree": len(list(api.list_repo_tree("org/many", revision="1", recursive=True))),
                              "top": sorted(e.path for e in api.list_repo_tree("org/many", revision="1"))}))
            """)
        let expected = (0..<count).map { String(format: "shards/%03d/part.txt", $0) } + ["config.json"]
        #expect(listing.files.sorted() == expected.sorted())
        #expect(listing.tree == count * 2 + 2, "files, their folders, shards/ and config.json")
        #expect(listing.top == ["config.json", "shards"])
    }

    /// transformers' `AutoConfig` and `AutoTokenizer.from_pretrained(repo, revision=…)` load through
    /// `HF_ENDPOINT` a model that lacks the optional files they probe for (special tokens map, added tokens, chat
    /// template…); the probes are cached as absent, so a second load works offline.
    @Test func transformersLoadsConfigAndTokenizerByAlias() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("tok")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        let made = try CommandProcess(
            [
                "python3", "-c",
                """
                import json
                from tokenizers import Tokenizer, models, pre_tokenizers
                tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
                tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
                tokenizer.save("tokenizer.json")
                json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]"}, open("tokenizer_config.json", "w"))
                json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
                           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 3,
                           "max_position_embeddings": 512}, open("config.json", "w"))
                """,
            ], in: model, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(made.status == 0, "\(made)")
        for step in [["push", model.path, "org/tok:1"], ["alias", "set", "org/tok", "prod", "1"]] {
            let result = try modelreg(step, environment: server.environment)
            try #require(result.status == 0, "\(result)")
        }
        let load = """
            from transformers import AutoConfig, AutoTokenizer
            config = AutoConfig.from_pretrained("org/tok", revision="prod")
            tokenizer = AutoTokenizer.from_pretrained("org/tok", revision="prod")
            print(config.model_type, config.hidden_size, tokenizer("hello world")["input_ids"])
            """
        var environment = [
            "HF_ENDPOINT": server.url + "/hf", "HF_TOKEN": server.adminToken, "HF_HOME": scratch.url("hf-home").path,
            "HF_HUB_DISABLE_TELEMETRY": "1",
        ]
        for offline in [false, true] {
            if offline { environment["HF_HUB_OFFLINE"] = "1" }
            let result = try CommandProcess(
                ["python3", "-c", load], environment: environment, in: scratch.root,
                executable: URL(fileURLWithPath: "/usr/bin/env")
            ).wait()
            #expect(result.status == 0, "offline \(offline): \(result)")
            #expect(result.stdout.hasSuffix("llama 64 [1, 2]\n"), "offline \(offline): \(result)")
        }
    }

    /// A download cut in the middle goes on with a `Range` from where it stopped, and ends byte-identical. (The
    /// client writes in 10 MiB pieces and resumes from what it wrote: the file is 24 MiB, cut after 15.)
    @Test func aCutDownloadResumesWithARange() throws {
        let scratch = try Scratch()
        let model = scratch.url("big")
        try TestModel.write(to: model)
        let big = try #require(FileHandle(forReadingAtPath: "/dev/urandom")?.readData(ofLength: 24 << 20))
        try big.write(to: model.appendingPathComponent("big.bin"))
        let server = try ServerProcess(data: scratch.url("data"))
        let push = try modelreg(["push", model.path, "org/big:1", "--no-inspect"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        let relay = try InterruptingProxy(to: server.url, direction: .toClient, after: 15 << 20, action: .cut)
        defer { relay.close() }
        let result = try CommandProcess(
            [
                "python3", "-c",
                """
                import hashlib
                from huggingface_hub import hf_hub_download
                path = hf_hub_download("org/big", "big.bin", revision="1", cache_dir="cache")
                print(hashlib.sha256(open(path, "rb").read()).hexdigest())
                """,
            ],
            environment: [
                "HF_ENDPOINT": relay.url + "/hf", "HF_TOKEN": server.adminToken, "HF_HOME": scratch.url("hf-home").path,
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            ],
            in: scratch.root, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        try #require(result.status == 0, "\(result)")
        #expect(relay.interrupted, "the download was not cut")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == Digest.of(Array(big)).hex)
        #expect(
            relay.sentToServer.lowercased().contains("range: bytes=\(10 << 20)-"),
            "the download did not resume with a range: \(relay.sentToServer)")
    }

    /// With blobs in S3, `resolve` answers with a redirect to a presigned URL that carries the file's commit,
    /// ETag and size, HEAD included: the client downloads from the object store without the registry's token.
    @Test func redirectedDownloadsGoToTheObjectStoreWithoutTheToken() throws {
        let relay = try InterruptingProxy(
            to: try MotoServer.shared().endpoint, direction: .toClient, after: Int.max, action: .cut, armed: false)
        defer { relay.close() }
        let storage = try SharedStorage(endpoint: relay.url)
        let fixture = try Fixture(extraArguments: storage.arguments, scratch: storage.scratch)
        relay.arm()
        let files = try fixture.python(
            [String: String].self,
            """
            from huggingface_hub import snapshot_download
            print(json.dumps(tree(snapshot_download("org/hub", revision="prod", cache_dir="cache"))))
            """)
        #expect(files == (try Self.hashes(fixture.first)))
        let sent = relay.sentToServer
        #expect(sent.contains("X-Amz-Signature="), "no presigned GET reached the object store")
        #expect(!sent.contains(fixture.server.adminToken), "the registry's token went to the object store")
        #expect(try fixture.bytesSent == 0, "the registry sent blob bytes itself")
    }

    /// A 1.x `huggingface_hub` (in a virtual environment of its own, made once) downloads the same.
    @Test func aFirstMajorVersionClientDownloadsTheSame() throws {
        let fixture = try Fixture()
        let python = try Self.legacyPython()
        let result = try fixture.python(
            [String: String].self,
            """
            import huggingface_hub
            from huggingface_hub import snapshot_download, hf_hub_download
            assert huggingface_hub.__version__.startswith("1."), huggingface_hub.__version__
            files = tree(snapshot_download("org/hub", revision="prod", cache_dir="cache"))
            files["one"] = hashlib.sha256(open(hf_hub_download("org/hub", "config.json", revision="2@awq-int4", cache_dir="cache"), "rb").read()).hexdigest()
            print(json.dumps(files))
            """, python: python)
        var expected = try Self.hashes(fixture.first)
        expected["one"] = try Self.hashes(fixture.quantized)["config.json"]
        #expect(result == expected)
    }

    /// The Python of a virtual environment holding huggingface_hub 1.33.0, made under `.build` the first time.
    static func legacyPython() throws -> String {
        let root = modelregBinary.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("hf1-venv")
        let python = root.appendingPathComponent("bin/python").path
        if !FileManager.default.isExecutableFile(atPath: python) {
            let made = try shell(
                "python3 -m venv '\(root.path)' && '\(python)' -m pip install --quiet --disable-pip-version-check huggingface_hub==1.33.0"
            )
            try #require(made.status == 0, "cannot make the 1.x environment: \(made.output)")
        }
        return python
    }
}
