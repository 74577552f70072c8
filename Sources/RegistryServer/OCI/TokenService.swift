import Foundation
import HTTPTypes
import Hummingbird
import ModelRegistryCore

/// The token service of the OCI API's `Bearer` challenge (`/v2/token`), for clients that ask it for a token
/// before they send credentials: given a registry token (as the password of `Basic` credentials, as a bearer
/// token, or in an OAuth2 password or refresh-token grant), it answers with that same token, which every
/// route takes as a bearer token. It grants nothing a client did not already hold.
struct TokenService {
    let registry: Registry

    /// The `service` of the challenge.
    static let name = "modelreg"
    /// How long a client may keep using the answer before asking again; the token itself lasts until revoked.
    static let lifetime = 3600

    /// `GET /v2/token`, Docker's token protocol.
    func issue(_ request: Request) async throws -> Response {
        guard let secret = Self.secret(fromAuthorization: request.headers[.authorization]) else {
            throw Self.challenge("send a registry token as the password of Basic credentials (any user name)")
        }
        return try await answer(secret)
    }

    /// `POST /v2/token`, the OAuth2 form containerd and Docker send: `grant_type=password` with the token as
    /// `password`, or `grant_type=refresh_token`.
    func issue(oauth request: Request, context: RegistryRequestContext) async throws -> Response {
        let form = Self.form(String(buffer: try await request.body.collect(upTo: context.maxUploadSize)))
        let secret: String?
        switch form["grant_type"] {
        case "password": secret = form["password"]
        case "refresh_token": secret = form["refresh_token"]
        default:
            throw OCIError(
                .badRequest, .unsupported,
                "grant_type \(form["grant_type"]?.prefix(40) ?? "(none)") is not served: use password (the registry token as the password) or refresh_token"
            )
        }
        guard let secret, !secret.isEmpty else { throw Self.challenge("the grant carries no token") }
        return try await answer(secret, oauth: true)
    }

    private func answer(_ secret: String, oauth: Bool = false) async throws -> Response {
        guard try await registry.metadata.token(hash: TokenSecret(secret).hash) != nil else {
            throw Self.challenge("the token is invalid or revoked")
        }
        let answer = TokenAnswer(
            token: secret, accessToken: secret, refreshToken: oauth ? secret : nil, expiresIn: Self.lifetime,
            issuedAt: Timestamp.now())
        return JSONBody.response(answer, headers: [.cacheControl: "no-store"])
    }

    /// An `application/x-www-form-urlencoded` body's fields, the first of each name; a malformed field is left out.
    static func form(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decoded(_ text: Substring) -> String? {
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            guard let name = decoded(parts[0]), let value = decoded(parts.count > 1 ? parts[1] : "") else { continue }
            if fields[name] == nil { fields[name] = value }
        }
        return fields
    }

    private static func challenge(_ why: String) -> OCIError {
        var error = OCIError(.unauthorized, .unauthorized, "the token service needs a registry token: \(why)")
        error.headers[.wwwAuthenticate] = "Basic realm=\"\(name)\""
        return error
    }

    /// The registry token in an `Authorization` header: the password of `Basic` credentials or a bearer token.
    static func secret(fromAuthorization header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        // Trimmed without Foundation's character sets, slow on Linux for a header every request carries.
        var value = parts[1]
        while value.first == " " || value.first == "\t" { value.removeFirst() }
        while value.last == " " || value.last == "\t" { value.removeLast() }
        switch parts[0].lowercased() {
        case "bearer":
            return String(value)
        case "basic":
            guard let data = Data(base64Encoded: String(value)), let text = String(data: data, encoding: .utf8),
                let colon = text.firstIndex(of: ":")
            else { return nil }
            return String(text[text.index(after: colon)...])
        default:
            return nil
        }
    }

    struct TokenAnswer: Encodable {
        let token: String
        let accessToken: String
        let refreshToken: String?
        let expiresIn: Int
        let issuedAt: String

        enum CodingKeys: String, CodingKey {
            case token
            case accessToken = "access_token"
            case refreshToken = "refresh_token"
            case expiresIn = "expires_in"
            case issuedAt = "issued_at"
        }
    }
}
