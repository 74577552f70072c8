import HTTPTypes
import Hummingbird
import ModelRegistryCore

/// A request for a path the API has, with a method that path does not answer.
struct MethodNotAllowed: Error {
    let method: HTTPRequest.Method
    let path: String
    let allowed: [HTTPRequest.Method]

    var allowHeader: String { allowed.map(\.rawValue).joined(separator: ", ") }

    /// A path of the Hugging Face Hub protocol, which is read-only and answers in the Hub's error form.
    var isHubPath: Bool { path.hasPrefix("/hf/") }

    /// A path of the OCI Distribution API, which answers in the spec's error form.
    var isOCIPath: Bool { path == RouteTable.ociBase || path.hasPrefix(RouteTable.ociBase + "/") }

    var registryError: RegistryError {
        if isHubPath {
            return RegistryError(
                .methodNotAllowed,
                "\(method) \(path.prefix(300)): the Hugging Face Hub endpoint of this registry is read-only; publish with `modelreg push`"
            )
        }
        return RegistryError(
            .methodNotAllowed, "\(method) is not allowed on \(path.prefix(300)): it answers \(allowHeader)")
    }
}

/// Which methods each path of the API answers, from the registered routes: a request the router has no
/// handler for is told a wrong method (405 with `Allow`) from a wrong path (404), and metrics label every
/// request by the template of its path.
struct RouteTable: Sendable {
    /// The one route that answers every path under `/v1/models/`; `ModelRoute` tells its resources apart.
    static let modelPaths = "/v1/models/**"
    /// The one route of the Hugging Face Hub protocol (`HubRoutes`): every path under `/hf/`.
    static let hubPaths = "/hf/**"
    /// The OCI Distribution API (`OCIRoutes`): its base, and every path under it.
    static let ociBase = "/v2"
    static let ociPaths = "/v2/**"

    private struct Template: Sendable {
        let path: String
        let segments: [Substring]
        var methods: [HTTPRequest.Method]
    }

    private let templates: [Template]

    init(_ routes: [Route]) {
        var templates: [Template] = []
        for route in routes {
            if let index = templates.firstIndex(where: { $0.path == route.path }) {
                templates[index].methods.append(route.method)
            } else {
                templates.append(
                    Template(path: route.path, segments: Self.segments(route.path), methods: [route.method]))
            }
        }
        self.templates = templates
    }

    /// The template a path matches and the methods it answers; nil for a path the API does not have.
    func match(_ path: String) -> (template: String, methods: [HTTPRequest.Method])? {
        let segments = Self.segments(path)
        for template in templates {
            if template.path == Self.modelPaths {
                guard segments.count > 2, segments[0] == "v1", segments[1] == "models" else { continue }
                guard let route = try? ModelRoute(segments: Array(segments.dropFirst(2))) else { return nil }
                return (route.template, route.methods)
            }
            if template.path == Self.ociPaths {
                guard segments.count > 1, segments[0] == "v2" else { continue }
                let shape = OCIRequest.Shape(segments.dropFirst().map(String.init))
                return (shape?.template ?? template.path, shape?.methods ?? [.get, .head])
            }
            if template.path == Self.hubPaths {
                guard segments.count > 1, segments[0] == "hf" else { continue }
                return (template.path, template.methods)
            }
            if template.path.hasSuffix("/**") {
                let prefix = template.segments.dropLast()
                if segments.count > prefix.count, zip(prefix, segments).allSatisfy({ $0 == $1 }) {
                    return (template.path, template.methods)
                }
                continue
            }
            guard template.segments.count == segments.count else { continue }
            let matches = zip(template.segments, segments).allSatisfy { pattern, segment in
                pattern.hasPrefix(":") || pattern == segment
            }
            if matches { return (template.path, template.methods) }
        }
        return nil
    }

    private static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}

extension Route {
    /// A HEAD route for every GET route that has none: the GET's status and headers, with the length its
    /// body would have, and no body.
    static func heads(for routes: [Route]) -> [Route] {
        let answered = Set(routes.filter { $0.method == .head }.map(\.path))
        return routes.filter { $0.method == .get && !answered.contains($0.path) }.map { get in
            Route(.head, get.path) { request, context in
                let response = try await get.handler(request, context)
                var headers = response.headers
                if headers[.contentLength] == nil, let length = response.body.contentLength {
                    headers[.contentLength] = String(length)
                }
                return Response(status: response.status, headers: headers, body: ResponseBody())
            }
        }
    }
}
