import Foundation
import HTTPTypes
import Hummingbird
import ModelRegistryCore

/// The Hugging Face Hub's download protocol under `/hf`, read-only, so that `HF_ENDPOINT=http://HOST:PORT/hf`
/// makes `huggingface_hub`, transformers and vLLM download registry models: model info, the file tree, and
/// files by `resolve`. Tokens and scopes are the registry's; errors carry the Hub's `X-Error-Code`.
struct HubRoutes {
    let registry: Registry

    /// Entries a page of the tree listing; the next page is linked (`Link: <…>; rel="next"`).
    static let treePageSize = 100

    var routes: [Route] {
        [
            Route(.get, RouteTable.hubPaths) { request, context in await answer(request, context, sendBody: true) },
            Route(.head, RouteTable.hubPaths) { request, context in await answer(request, context, sendBody: false) },
        ]
    }

    private func answer(_ request: Request, _ context: RegistryRequestContext, sendBody: Bool) async -> Response {
        do {
            try registry.authorize(context, .read)
            let segments = try context.parameters.getCatchAll().map { segment throws(RegistryError) in
                guard let decoded = String(segment).removingPercentEncoding else {
                    throw RegistryError(.invalidRequest, "malformed percent-encoding in \(segment.prefix(200))")
                }
                return decoded
            }
            let hubRequest = try HubRequest(segments: segments)
            switch hubRequest {
            case .modelInfo(let model, let revision):
                let snapshot = try await snapshot(model, revision)
                return JSONBody.rendered(HubModelInfo(snapshot)).response(sendBody: sendBody)
            case .tree(let model, let revision, let path):
                return try await tree(request, try await snapshot(model, revision), revision: revision, path: path)
                    .response(sendBody: sendBody)
            case .resolve(let model, let revision, let path):
                return try await resolve(
                    request, context, try await snapshot(model, revision), path: path, sendBody: sendBody)
            }
        } catch let error as HubError {
            return error.response
        } catch let error as RegistryError {
            return HubError(error).response
        } catch {
            return HubError(RegistryError(.internalError, "internal error: \(error)")).response
        }
    }

    /// The variant `revision` names, kept until the model changes.
    private func snapshot(_ model: ModelName, _ revision: String) async throws -> HubSnapshot {
        try await registry.hubSnapshots.value(
            for: HubSnapshotKey(model: model, revision: revision),
            at: try await registry.metadata.changeCount(of: model), cost: \.cost
        ) {
            try await HubSnapshot.resolve(revision, of: model, in: registry.metadata, blobs: registry.blobs)
        }
    }

    /// A file's bytes with the headers `hf_hub_download` needs: the commit, the ETag (the content's sha256, so
    /// the client's blob cache and a `local_dir` rerun recognise it), the size. A redirect to the object store
    /// carries them itself, HEAD included, as the Hub's redirects to its CDN do: the client then downloads
    /// from there without the token.
    private func resolve(
        _ request: Request, _ context: RegistryRequestContext, _ snapshot: HubSnapshot, path: String, sendBody: Bool
    ) async throws
        -> Response
    {
        guard let file = snapshot.manifest.files.first(where: { $0.path.value == path }) else {
            throw HubError.entryNotFound(snapshot.model, path, commit: snapshot.commit)
        }
        let etag = "\"\(file.digest.hex)\""
        let headers: HTTPFields = [
            .hubRepoCommit: snapshot.commit,
            .eTag: etag,
            .hubLinkedETag: etag,
            .hubLinkedSize: String(file.size),
            .modelregDigest: file.digest.description,
        ]
        return try await BlobDownload(registry: registry, channel: context.channel).response(
            file.digest, size: file.size, request: request, headers: headers, sendBody: sendBody, redirectHead: true)
    }

    /// The files and folders under `path` (everything below it with `recursive=true`), a page at a time.
    private func tree(_ request: Request, _ snapshot: HubSnapshot, revision: String, path: String) async throws
        -> RenderedResponse
    {
        let query = request.uri.queryParameters
        let recursive: Bool
        switch query.get("recursive") {
        case nil, "false": recursive = false
        case "true": recursive = true
        case let other?: throw RegistryError(.invalidRequest, "recursive=\(other.prefix(40)) is neither true nor false")
        }
        let prefix = path.isEmpty ? "" : path + "/"
        var entries: [HubTreeEntry] = []
        var folders = Set<String>()
        for file in snapshot.manifest.files where file.path.value.hasPrefix(prefix) {
            let components = file.path.value.dropFirst(prefix.count).split(separator: "/").map(String.init)
            // The folders between `path` and the file; without recursion only the first, and not the file.
            for depth in 1..<components.count where recursive || depth == 1 {
                let folder = prefix + components.prefix(depth).joined(separator: "/")
                if folders.insert(folder).inserted {
                    let oid = String(Digest.of(Array("\(snapshot.commit)/\(folder)".utf8)).hex.prefix(40))
                    entries.append(HubTreeEntry(type: "directory", oid: oid, size: 0, path: folder, lfs: nil))
                }
            }
            guard recursive || components.count == 1 else { continue }
            let lfs =
                snapshot.manifest.isWeightFile(file)
                ? HubTreeEntry.LFS(oid: file.digest.hex, size: file.size, pointerSize: HubLFS.pointerSize(file)) : nil
            entries.append(
                HubTreeEntry(type: "file", oid: file.digest.hex, size: file.size, path: file.path.value, lfs: lfs))
        }
        if entries.isEmpty, !path.isEmpty {
            throw HubError.entryNotFound(snapshot.model, path, commit: snapshot.commit)
        }
        entries.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        let cursor = query.get("cursor")
        // Any non-negative integer is a position (the document says so): one too large for an Int is past the end.
        let huge = cursor.map { !$0.isEmpty && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } } ?? false
        guard let position = cursor.map({ Int($0) ?? (huge ? Int.max : nil) }) ?? 0, position >= 0 else {
            throw RegistryError(
                .invalidRequest,
                "cursor \(cursor?.prefix(40) ?? "") is no position in a listing: follow the Link header")
        }
        // A position past the end is an empty page, as the last page's successor would be.
        let start = min(position, entries.count)
        let end = min(entries.count, start + Self.treePageSize)
        var headers: HTTPFields = [.hubRepoCommit: snapshot.commit]
        if end < entries.count {
            headers[.link] = "<\(nextPage(request, cursor: end))>; rel=\"next\""
        }
        return JSONBody.rendered(Array(entries[start..<end]), headers: headers)
    }

    /// This request's absolute URL with the cursor of the next page: clients follow it as given.
    private func nextPage(_ request: Request, cursor: Int) -> String {
        var components = URLComponents()
        components.queryItems =
            request.uri.queryParameters.filter { $0.key != "cursor" }.map {
                URLQueryItem(name: String($0.key), value: String($0.value))
            } + [URLQueryItem(name: "cursor", value: String(cursor))]
        return "\(registry.origin(of: request))\(request.uri.path)?\(components.percentEncodedQuery ?? "")"
    }
}

/// A revision of a model as asked for, the key of a kept `HubSnapshot`.
struct HubSnapshotKey: Hashable, Sendable {
    let model: ModelName
    let revision: String
}
