import Foundation
import HTTPTypes
import Hummingbird
import ModelRegistryCore
import NIOHTTP1
import RegistryAPI

/// Turns every error into the API's JSON error body with the right status, and records request metrics.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext
    let metrics: RegistryMetrics
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        let route = routes.match(request.uri.path)
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as RegistryError {
            response = Self.errorResponse(error)
        } catch let error as MethodNotAllowed {
            response = Self.errorResponse(error)
        } catch let error as any HTTPResponseError {
            // The router found no handler for the method on a path the API has: the method is what is wrong.
            if error.status == .notFound, let route, !route.methods.contains(request.method) {
                response = Self.errorResponse(
                    MethodNotAllowed(method: request.method, path: request.uri.path, allowed: route.methods))
            } else {
                response = Self.errorResponse(RegistryError(Self.code(for: error.status), Self.message(for: error)))
            }
        } catch is CancellationError {
            // Handlers are cancelled when the server stops with requests still running (a drain timeout
            // that expired): an expected outcome that the Drainer has logged, not a server failure.
            response = Self.errorResponse(
                RegistryError(
                    .notReady,
                    "the registry stopped before this request finished: retry; an upload resumes from the bytes it kept"
                )
            )
        } catch let error as HTTPParserError {
            // A body the HTTP parser refused (a chunk size that is no number): the client's fault, not ours.
            response = Self.errorResponse(RegistryError(.invalidRequest, "malformed request: \(error)"))
        } catch {
            if let full = RegistryError.insufficientStorage(from: error) {
                context.logger.error(
                    "request failed: disk full", metadata: ["error": .string(String(describing: error))])
                response = Self.errorResponse(full)
            } else {
                context.logger.error("request failed", metadata: ["error": .string(String(describing: error))])
                response = Self.errorResponse(RegistryError(.internalError, "internal error: \(error)"))
            }
        }
        metrics.recordRequest(
            method: request.method.rawValue,
            route: route?.template ?? "unmatched",
            status: response.status.code,
            duration: ContinuousClock.now - start
        )
        return response
    }

    static func errorResponse(_ error: RegistryError) -> Response {
        var response = JSONBody.response(
            ErrorBody(error),
            status: HTTPResponse.Status(code: error.httpStatus))
        if error.code == .unauthorized {
            response.headers[.wwwAuthenticate] = "Bearer realm=\"modelreg\""
        }
        return response
    }

    static func errorResponse(_ error: MethodNotAllowed) -> Response {
        if error.isOCIPath {
            var response = OCIError(error.registryError).response
            response.headers[.allow] = error.allowHeader
            return response
        }
        if error.isHubPath {
            var response = HubError(error.registryError).response
            response.headers[.allow] = error.allowHeader
            return response
        }
        var response = errorResponse(error.registryError)
        response.headers[.allow] = error.allowHeader
        return response
    }

    private static func code(for status: HTTPResponse.Status) -> RegistryError.Code {
        switch status.code {
        case 401: .unauthorized
        case 403: .forbidden
        case 404: .notFound
        case 405: .methodNotAllowed
        case 409: .conflict
        case 413: .payloadTooLarge
        case 416: .rangeNotSatisfiable
        case 400..<500: .invalidRequest
        default: .internalError
        }
    }

    private static func message(for error: any HTTPResponseError) -> String {
        if let error = error as? HTTPError, let body = error.body { return body }
        switch error.status.code {
        case 404: return "no such route"
        case 405: return "method not allowed on this route"
        case 413: return "request body too large"
        default: return error.status.reasonPhrase
        }
    }
}

/// Resolves the token of a request, if any, into an identity. Authorization itself happens per route.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext
    let tokens: any TokenStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var context = context
        if let header = request.headers[.authorization] {
            // A bearer token, or the password of Basic credentials, as OCI clients send it.
            if let secret = TokenService.secret(fromAuthorization: header), !secret.isEmpty,
                let record = try await tokens.token(hash: TokenSecret(secret).hash)
            {
                context.identity = .token(record)
            } else {
                context.identity = .invalid
            }
        }
        return try await next(request, context)
    }
}

/// Consistent JSON encoding for every response body.
enum JSONBody {
    static let contentType = "application/json"

    static func encode(_ value: some Encodable) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The API's response types are plain values; encoding them cannot fail.
        return ByteBuffer(bytes: try! encoder.encode(value))
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:])
        -> Response
    {
        rendered(value, status: status, headers: headers).response(sendBody: true)
    }

    static func rendered(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:])
        -> RenderedResponse
    {
        var headers = headers
        headers[.contentType] = contentType
        return RenderedResponse(status: status, headers: headers, body: encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: RegistryRequestContext)
        async throws -> T
    {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer: buffer))
        } catch let error as RegistryError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            if let underlying = context.underlyingError as? RegistryError { throw underlying }
            throw RegistryError(
                .invalidRequest, "request body is not valid JSON for this route: \(context.debugDescription)")
        } catch {
            throw RegistryError(.invalidRequest, "request body is not valid JSON for this route: \(error)")
        }
    }
}

/// A response held whole in memory, so that a database read can be answered again without reading or
/// encoding anything (see `Registry.renderedReads`).
struct RenderedResponse: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    /// What keeping it costs, in bytes.
    var cost: Int { body.readableBytes + 512 }

    /// HEAD answers with the length the GET body would have.
    func response(sendBody: Bool) -> Response {
        var headers = headers
        headers[.contentLength] = String(body.readableBytes)
        return Response(
            status: status, headers: headers, body: sendBody ? ResponseBody(byteBuffer: body) : ResponseBody())
    }
}

extension HTTPField.Name {
    static let uploadOffset = HTTPField.Name(APIHeader.uploadOffset)!
    static let modelregDigest = HTTPField.Name(APIHeader.digest)!
    static let modelregVersion = HTTPField.Name(APIHeader.version)!
    static let modelregVariant = HTTPField.Name(APIHeader.variant)!
    static let modelregDeprecated = HTTPField.Name(APIHeader.deprecated)!
    static let modelregImageState = HTTPField.Name(APIHeader.imageState)!
}
