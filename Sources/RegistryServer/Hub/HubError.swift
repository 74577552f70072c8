import HTTPTypes
import Hummingbird
import ModelRegistryCore

/// An error as the Hub answers it, which `huggingface_hub` turns into its own exceptions: `X-Error-Code`
/// (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) and `X-Error-Message` headers, and a JSON body
/// `{"error": message}`. An absent file's answer names the commit, so clients cache the file as absent there.
struct HubError: Error {
    var status: HTTPResponse.Status
    var code: String?
    var message: String
    var commit: String?

    static func repoNotFound(_ repo: String) -> HubError {
        HubError(
            status: .notFound, code: "RepoNotFound",
            message: "Repository Not Found: no model '\(repo.prefix(140))' in this registry (model names are lowercase)"
        )
    }

    static func revisionNotFound(_ repo: ModelName, _ revision: String, _ why: String) -> HubError {
        HubError(
            status: .notFound, code: "RevisionNotFound",
            message:
                "Invalid rev id: \(revision.prefix(140)) is no revision of \(repo): \(why) (revisions: an alias, a version, VERSION@VARIANT, main, or a 40-hex commit)"
        )
    }

    static func entryNotFound(_ repo: ModelName, _ path: String, commit: String) -> HubError {
        HubError(
            status: .notFound, code: "EntryNotFound",
            message: "Entry Not Found: \(repo) has no file '\(path.prefix(300))' at commit \(commit)", commit: commit)
    }

    /// The registry's own errors, worded as they are, with their status. A missing or invalid token is told as
    /// the Hub tells it for a private repo, `RepoNotFound` with 401, which clients answer by asking for a token.
    init(_ error: RegistryError) {
        self.init(
            status: HTTPResponse.Status(code: error.httpStatus),
            code: error.code == .unauthorized ? "RepoNotFound" : nil,
            message: error.message)
    }

    init(status: HTTPResponse.Status, code: String?, message: String, commit: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit
    }

    var response: Response {
        var headers: HTTPFields = [.hubErrorMessage: Self.headerSafe(message)]
        if let code { headers[.hubErrorCode] = code }
        if let commit { headers[.hubRepoCommit] = commit }
        if status == .unauthorized { headers[.wwwAuthenticate] = "Bearer realm=\"modelreg\"" }
        return JSONBody.response(HubErrorBody(error: message), status: status, headers: headers)
    }

    /// Header values are one line of visible ASCII.
    private static func headerSafe(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? $0 : "?" }))
    }
}

private struct HubErrorBody: Encodable {
    let error: String
}

extension HTTPField.Name {
    static let hubErrorCode = HTTPField.Name("X-Error-Code")!
    static let hubErrorMessage = HTTPField.Name("X-Error-Message")!
    static let hubRepoCommit = HTTPField.Name("X-Repo-Commit")!
    static let hubLinkedETag = HTTPField.Name("X-Linked-Etag")!
    static let hubLinkedSize = HTTPField.Name("X-Linked-Size")!
}
