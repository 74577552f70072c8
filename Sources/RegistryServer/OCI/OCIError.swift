import HTTPTypes
import Hummingbird
import ModelRegistryCore

/// An error of the OCI Distribution API: its status and the spec's body,
/// `{"errors":[{"code","message","detail"}]}`, with a code from the spec's table.
struct OCIError: Error {
    enum Code: String {
        case blobUnknown = "BLOB_UNKNOWN"
        case blobUploadInvalid = "BLOB_UPLOAD_INVALID"
        case blobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
        case digestInvalid = "DIGEST_INVALID"
        case manifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
        case manifestInvalid = "MANIFEST_INVALID"
        case manifestUnknown = "MANIFEST_UNKNOWN"
        case nameInvalid = "NAME_INVALID"
        case nameUnknown = "NAME_UNKNOWN"
        case sizeInvalid = "SIZE_INVALID"
        case unauthorized = "UNAUTHORIZED"
        case denied = "DENIED"
        case unsupported = "UNSUPPORTED"
        case rangeInvalid = "RANGE_INVALID"
        case unavailable = "UNAVAILABLE"
        case unknown = "UNKNOWN"
    }

    let status: HTTPResponse.Status
    let code: Code
    let message: String
    /// Headers the answer carries besides the body's (`WWW-Authenticate`, `Content-Range`).
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ code: Code, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    /// A registry error in the spec's terms; `notFound` says what was not found.
    init(_ error: RegistryError, notFound: Code = .nameUnknown) {
        let status = HTTPResponse.Status(code: error.httpStatus)
        let code: Code =
            switch error.code {
            case .unauthorized: .unauthorized
            case .forbidden: .denied
            case .invalidName: .nameInvalid
            case .invalidDigest, .digestMismatch: .digestInvalid
            case .invalidManifest, .invalidPath, .invalidModelFile: .manifestInvalid
            case .blobsMissing: .manifestBlobUnknown
            case .notFound: notFound
            case .methodNotAllowed, .invalidRequest, .invalidReference, .ambiguousVariant: .unsupported
            case .rangeNotSatisfiable, .uploadOffsetMismatch: .rangeInvalid
            case .notReady: .unavailable
            case .conflict, .aliasMoved, .uploadBusy: .denied
            case .payloadTooLarge: .sizeInvalid
            case .insufficientStorage, .databaseTooNew, .storageFailure, .integrity, .internalError: .unknown
            }
        self.init(status, code, error.message)
    }

    static func manifestUnknown(_ model: ModelName, _ reference: String) -> OCIError {
        OCIError(
            .notFound, .manifestUnknown,
            "\(model) has no manifest '\(reference.prefix(140))': list its tags with GET /v2/\(model)/tags/list")
    }

    static func blobUnknown(_ model: ModelName, _ digest: Digest) -> OCIError {
        OCIError(.notFound, .blobUnknown, "\(model) has no blob \(digest)")
    }

    static func nameUnknown(_ model: ModelName) -> OCIError {
        OCIError(.notFound, .nameUnknown, "no model named \(model)")
    }

    private struct Body: Encodable {
        struct Entry: Encodable {
            let code: String
            let message: String
            let detail: [String: String]
        }
        let errors: [Entry]
    }

    var response: Response {
        var response = JSONBody.response(
            Body(errors: [Body.Entry(code: code.rawValue, message: message, detail: [:])]), status: status)
        for field in headers { response.headers[field.name] = field.value }
        response.headers[.dockerDistributionAPIVersion] = "registry/2.0"
        return response
    }
}

extension HTTPField.Name {
    static let dockerDistributionAPIVersion = Self("Docker-Distribution-API-Version")!
    static let dockerContentDigest = Self("Docker-Content-Digest")!
    static let ociFiltersApplied = Self("OCI-Filters-Applied")!
    static let ociSubject = Self("OCI-Subject")!
}
