import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import TestServers
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Transfers cut off in the middle, by killing the client or the server or by dropping the connection,
/// resume where they stopped and end byte-identical. Interruptions happen at a byte count chosen by an
/// `InterruptingProxy`, never after a delay.
@Suite(.serialized) struct InterruptionTests {
    static let weightBytes = 24 << 20
    static let interruptAt = 8 << 20

    @Test func aKilledPushResumesWithOnlyTheRest() async throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = try writeModel(scratch.url("model"))
        let proxy = try InterruptingProxy(to: server.url, direction: .toServer, after: Self.interruptAt, action: .stall)
        let push = try CommandProcess(
            ["push", model.path, "m:1", "--quiet"],
            environment: server.environment.merging(["MODELREG_URL": proxy.url]) { $1 })
        let upload = try waitForUpload(in: server.data, holding: Self.interruptAt - (1 << 20))
        push.kill()
        proxy.close()
        let offset = try await waitUntilIdle(server, upload: upload)
        #expect(offset > 0 && offset < Int64(Self.weightBytes))

        let resumed = try modelreg(["push", model.path, "m:1", "--json"], environment: server.environment)
        try #require(resumed.status == 0, "\(resumed)")
        let report = try resumed.json(PushReportJSON.self)
        // The config's upload may have been cut off too (before its commit), so it may count as well.
        #expect(report.bytesResumed >= offset, "the bytes the server kept are not sent again")
        // Across both runs the server received every byte of the weights once. The config's (21 bytes) may come
        // twice: when its commit is still under way as the second push asks for it, neither its upload nor its
        // blob is there to be found, and it is sent again.
        let received = try await metric("modelreg_blob_bytes_received_total", server)
        let total = try totalSize(model)
        let config = Int64(try Data(contentsOf: model.appendingPathComponent("config.json")).count)
        #expect(received >= total && received <= total + config, "received \(received) of \(total): \(resumed.stdout)")
        try expectPullsBack(model, from: server, into: scratch.url("pulled"))
        // Nothing that holds bytes is left. An upload the server started just as the kill came, before the push
        // could record it, is never continued and holds no byte; the sweep removes it with its TTL.
        let uploads = server.data.appendingPathComponent("uploads")
        let leftovers = regularFiles(uploads).filter { name in
            let size = (try? uploads.appendingPathComponent(name).resourceValues(forKeys: [.fileSizeKey]).fileSize)
            return (try? UploadID(name)) == nil || size != 0
        }
        #expect(leftovers.isEmpty, "\(regularFiles(uploads))")
    }

    @Test func aPushResumesAfterTheServerWasKilled() async throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        var server = try ServerProcess(data: data)
        let model = try writeModel(scratch.url("model"))
        let proxy = try InterruptingProxy(to: server.url, direction: .toServer, after: Self.interruptAt, action: .stall)
        let push = try CommandProcess(
            ["push", model.path, "m:1", "--quiet"],
            environment: server.environment.merging(["MODELREG_URL": proxy.url]) { $1 })
        let upload = try waitForUpload(in: data, holding: Self.interruptAt - (1 << 20))
        server.kill()
        push.kill()
        proxy.close()
        let kept = try #require(try FileManager.default.attributesOfItem(atPath: upload.path)[.size] as? Int64)

        // A new server process has no hash state in memory: it rebuilds it from the bytes on disk.
        server = try ServerProcess(data: data)
        let resumed = try modelreg(["push", model.path, "m:1", "--json"], environment: server.environment)
        try #require(resumed.status == 0, "\(resumed)")
        #expect(try resumed.json(PushReportJSON.self).bytesResumed >= kept)
        try expectPullsBack(model, from: server, into: scratch.url("pulled"))
    }

    @Test func aKilledPullResumesWithOnlyTheRest() async throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = try writeModel(scratch.url("model"))
        let pushed = try modelreg(["push", model.path, "m:1"], environment: server.environment)
        try #require(pushed.status == 0, "\(pushed)")
        let sentBefore = try await metric("modelreg_blob_bytes_sent_total", server)

        let dest = scratch.url("dest")
        let proxy = try InterruptingProxy(to: server.url, direction: .toClient, after: Self.interruptAt, action: .stall)
        let pull = try CommandProcess(
            ["pull", "m:1", "--dest", dest.path, "--quiet"],
            environment: server.environment.merging(["MODELREG_URL": proxy.url]) { $1 })
        let partial = try waitForFile(
            under: scratch.root, named: { $0.contains("/.modelreg-parts/") }, holding: Self.interruptAt - (1 << 20))
        let meanwhile = try modelreg(["pull", "m:1", "--dest", dest.path], environment: server.environment)
        #expect(meanwhile.status == 7 && meanwhile.stderr.contains("another pull into"), "\(meanwhile)")
        pull.kill()
        proxy.close()
        let kept = try #require(try FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int64)
        let visible = try FileManager.default.contentsOfDirectory(atPath: dest.path)
        #expect(
            visible.allSatisfy { $0.hasPrefix(".modelreg-staging-") },
            "nothing of the model at the destination before every file verified: \(visible)")
        let sentByKilledPull = try await metric("modelreg_blob_bytes_sent_total", server) - sentBefore

        let resumed = try modelreg(["pull", "m:1", "--dest", dest.path, "--json"], environment: server.environment)
        try #require(resumed.status == 0, "\(resumed)")
        let report = try resumed.json(PullReportJSON.self)
        #expect(report.bytesResumed >= kept)
        #expect(report.bytesReceived + report.bytesResumed == report.bytes)
        let sentAfter = try await metric("modelreg_blob_bytes_sent_total", server)
        #expect(sentAfter - sentBefore - sentByKilledPull == report.bytesReceived)
        try expectSameTree(model, dest)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dest.path).filter { $0.hasPrefix(".modelreg-") }.isEmpty
        )
    }

    @Test func droppedConnectionsAreResumedWithinOneRun() async throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = try writeModel(scratch.url("model"))
        let upstream = try InterruptingProxy(
            to: server.url, direction: .toServer, after: Self.interruptAt, action: .cut)
        let push = try modelreg(
            ["push", model.path, "m:1", "--json"],
            environment: server.environment.merging(["MODELREG_URL": upstream.url]) { $1 })
        try #require(push.status == 0, "\(push)")
        #expect(upstream.interrupted)
        let received = try await metric("modelreg_blob_bytes_received_total", server)
        #expect(received == (try totalSize(model)), "no byte the server had was sent again")

        let downstream = try InterruptingProxy(
            to: server.url, direction: .toClient, after: Self.interruptAt, action: .cut)
        let dest = scratch.url("dest")
        let pull = try modelreg(
            ["pull", "m:1", "--dest", dest.path, "--json"],
            environment: server.environment.merging(["MODELREG_URL": downstream.url]) { $1 })
        try #require(pull.status == 0, "\(pull)")
        #expect(downstream.interrupted)
        let report = try pull.json(PullReportJSON.self)
        #expect(report.bytesReceived == report.bytes, "the rest of the cut file came by Range, nothing twice")
        try expectSameTree(model, dest)
    }

    @Test func parallelPushesSharingFilesStoreEachBlobOnce() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let first = try writeModel(scratch.url("a"), config: #"{"model_type":"a"}"#)
        let second = scratch.url("b")
        try FileManager.default.copyItem(at: first, to: second)
        try Data(#"{"model_type":"b"}"#.utf8).write(to: second.appendingPathComponent("config.json"))

        let pushes = try [(first, "a:1"), (second, "b:1")].map { directory, reference in
            try CommandProcess(["push", directory.path, reference, "--quiet"], environment: server.environment)
        }
        for push in pushes {
            let result = try push.wait()
            #expect(result.status == 0, "\(result)")
        }
        let blobs = regularFiles(server.data.appendingPathComponent("blobs"))
        #expect(blobs.count == 3, "one weights blob and two configs: \(blobs)")
        #expect(regularFiles(server.data.appendingPathComponent("uploads")).isEmpty)
        try expectPullsBack(first, from: server, into: scratch.url("pulled-a"), reference: "a:1")
        try expectPullsBack(second, from: server, into: scratch.url("pulled-b"), reference: "b:1")
    }

    @Test func anUnchangedDirectoryIsNotHashedAgain() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = try writeModel(scratch.url("model"))
        let first = try modelreg(["push", model.path, "m:1", "--json"], environment: server.environment)
        try #require(first.status == 0, "\(first)")
        #expect(try first.json(PushReportJSON.self).filesHashed == 2)

        let again = try modelreg(["push", model.path, "m:1", "--json"], environment: server.environment)
        let report = try again.json(PushReportJSON.self)
        #expect(report.filesHashed == 0 && report.bytesSent == 0 && !report.created)

        try Data(#"{"model_type":"changed"}"#.utf8).write(to: model.appendingPathComponent("config.json"))
        let changed = try modelreg(["push", model.path, "m:2", "--json"], environment: server.environment)
        try #require(changed.status == 0, "\(changed)")
        let changedReport = try changed.json(PushReportJSON.self)
        #expect(changedReport.filesHashed == 1 && changedReport.blobsUploaded == 1)

        let uncached = try modelreg(
            ["push", model.path, "m:2", "--json", "--no-hash-cache"], environment: server.environment)
        #expect(try uncached.json(PushReportJSON.self).filesHashed == 2)
    }

    @Test func progressIsPlainLinesInLogsAndNothingWhenQuiet() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = try writeModel(scratch.url("model"))
        let push = try modelreg(["push", model.path, "m:1"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        #expect(push.stderr.contains("uploaded weights.bin (24.0 MiB)"), "\(push.stderr)")
        #expect(push.stderr.contains("pushing 0% 0 B of 24.0 MiB, 0 B/s, 0/2 files\n"), "\(push.stderr)")
        #expect(!push.stderr.contains("\u{1B}["), "no terminal codes in a log")
        let pull = try modelreg(
            ["pull", "m:1", "--dest", scratch.url("dest").path, "--quiet"], environment: server.environment)
        try #require(pull.status == 0, "\(pull)")
        #expect(pull.stderr.isEmpty)

        // fetch, the init container's command, logs the same way (it printed nothing while a file came in).
        let fetch = try modelreg(
            ["fetch", "m:1", "--dest", scratch.url("fetched").path, "--progress-interval", "1"],
            environment: server.environment)
        try #require(fetch.status == 0, "\(fetch)")
        #expect(fetch.stderr.contains("fetching 0% 0 B of 24.0 MiB, 0 B/s, 0/2 files\n"), "\(fetch.stderr)")
        #expect(fetch.stderr.contains("fetched weights.bin (24.0 MiB)\n"), "\(fetch.stderr)")
        #expect(!fetch.stderr.contains("\u{1B}["), "no terminal codes in a log")
        for quiet in ["--quiet", "-q"] {
            let quietFetch = try modelreg(
                ["fetch", "m:1", "--dest", scratch.url("fetched\(quiet)").path, quiet], environment: server.environment)
            try #require(quietFetch.status == 0, "\(quietFetch)")
            #expect(quietFetch.stderr.isEmpty, "\(quietFetch.stderr)")
        }
    }

    @Test func progressIsDrawnAsBarsOnATerminal() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = try writeModel(scratch.url("model"))
        let (pushed, pushStatus) = try onTerminal(
            [modelregBinary.path, "push", model.path, "m:1", "--no-inspect"], server: server, scratch: scratch)
        #expect(pushStatus == 0, "\(pushed)")
        // The first drawing, made before any file starts, is the total line, erased and redrawn in place. Files
        // new to the hash cache are hashed as they are sent: there is no hashing pass of its own.
        #expect(pushed.contains("\u{1B}[2Kpushing 0% 0 B of 24.0 MiB") && !pushed.contains("hashing"), "\(pushed)")
        #expect(pushed.contains("uploaded weights.bin") && pushed.contains("published"))

        let (fetched, fetchStatus) = try onTerminal(
            [modelregBinary.path, "fetch", "m:1", "--dest", scratch.url("fetched").path], server: server,
            scratch: scratch)
        #expect(fetchStatus == 0, "\(fetched)")
        #expect(fetched.contains("\u{1B}[2Kfetching 0% 0 B of 24.0 MiB"), "\(fetched)")
        // A finished file's line is written where the bars were, which are drawn again below it.
        #expect(
            fetched.contains("\r\u{1B}[2Kfetched weights.bin (24.0 MiB)\n")
                || fetched.contains("fetched weights.bin (24.0 MiB)\r\n"), "\(fetched)")
        #expect(fetched.contains("placed m:1 variant default"), "\(fetched)")
    }

    /// What `arguments` drew on a pseudo-terminal (script(1) gives it one and copies what it draws into a
    /// file), and its exit status.
    func onTerminal(_ arguments: [String], server: ServerProcess, scratch: Scratch) throws -> (
        drawn: String, status: Int32
    ) {
        let typescript = scratch.url("typescript-\(UUID().uuidString)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-q", "-e", "-c", arguments.map { "'\($0)'" }.joined(separator: " "), typescript.path]
        var environment = ProcessInfo.processInfo.environment
        environment.merge(server.environment) { $1 }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.runAlone()
        process.waitUntilExit()
        return (try String(contentsOf: typescript, encoding: .utf8), process.terminationStatus)
    }

    // MARK: Helpers

    /// A directory with one large file of random bytes (more than one interruption's worth) and a config.
    func writeModel(_ root: URL, config: String = #"{"model_type":"test"}"#) throws -> URL {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        try random.readData(ofLength: Self.weightBytes).write(to: root.appendingPathComponent("weights.bin"))
        try Data(config.utf8).write(to: root.appendingPathComponent("config.json"))
        return root
    }

    func totalSize(_ root: URL) throws -> Int64 {
        try snapshot(root).values.reduce(0) { $0 + Int64($1.0.count) }
    }

    func expectPullsBack(_ model: URL, from server: ServerProcess, into dest: URL, reference: String = "m:1") throws {
        let pull = try modelreg(["pull", reference, "--dest", dest.path], environment: server.environment)
        try #require(pull.status == 0, "\(pull)")
        try expectSameTree(model, dest)
    }

    /// The server's upload in progress once it holds at least `bytes`.
    func waitForUpload(in data: URL, holding bytes: Int) throws -> URL {
        try waitForFile(
            under: data.appendingPathComponent("uploads"), named: { !$0.hasSuffix(".digest") }, holding: bytes)
    }

    func waitForFile(under root: URL, named matches: (String) -> Bool, holding bytes: Int) throws -> URL {
        for _ in 0..<6000 {
            let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.fileSizeKey])
            while let url = enumerator?.nextObject() as? URL {
                if matches(url.path), let size = try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize,
                    size >= bytes
                {
                    return url
                }
            }
            usleep(20_000)
        }
        throw ServerError("no file under \(root.path) reached \(bytes) bytes")
    }

    /// Waits until the server has noticed the dropped connection and released the upload, and returns its
    /// offset. An empty PATCH at the current offset is refused with 409 while another request holds it.
    func waitUntilIdle(_ server: ServerProcess, upload: URL) async throws -> Int64 {
        for _ in 0..<3000 {
            let offset = try #require(try FileManager.default.attributesOfItem(atPath: upload.path)[.size] as? Int64)
            var request = HTTPClientRequest(url: "\(server.url)/v1/uploads/\(upload.lastPathComponent)")
            request.method = .PATCH
            request.headers.add(name: "Authorization", value: "Bearer \(server.adminToken)")
            request.headers.add(name: "Upload-Offset", value: String(offset))
            request.body = .bytes(ByteBuffer())
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            if response.status.code == 202 { return offset }
            usleep(20_000)
        }
        throw ServerError("upload \(upload.lastPathComponent) stayed busy")
    }

    func metric(_ name: String, _ server: ServerProcess) async throws -> Int64 {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: "\(server.url)/metrics"), timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Int64($0.split(separator: " ").last ?? "") } ?? 0
    }
}
