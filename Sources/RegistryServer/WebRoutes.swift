import Foundation
import HTTPTypes
import Hummingbird
import ModelFormats
import ModelRegistryCore
import WebUI

/// The web pages under `/ui`: the catalogue, a model, a variant, the audit log, sign-in, and the forms that move
/// aliases and deprecate versions. They read and write through the same stores and rules as the API: the same
/// scopes, the same compare-and-swap on aliases, the same audit records.
struct WebRoutes {
    let registry: Registry

    static let modelPaths = "/ui/models/**"
    private static let renderer = PageRenderer()
    /// Entries a page of the audit log shows.
    private static let auditPageSize = 50

    var routes: [Route] {
        [
            Route(.get, "/") { _, _ in Self.redirect(to: WebPaths.root) },
            Route(.get, WebPaths.root) { request, context in
                try await page(request, context) { viewer, _ in try await catalogue(request, viewer) }
            },
            Route(.get, Self.modelPaths) { request, context in
                try await page(request, context) { viewer, _ in try await modelOrVariant(request, context, viewer) }
            },
            Route(.post, Self.modelPaths) { request, context in try await action(request, context) },
            Route(.get, "/ui/audit") { request, context in
                try await page(request, context) { viewer, token in try await audit(request, viewer, token) }
            },
            Route(.get, "/ui/sign-in") { request, _ in signInForm(request) },
            Route(.post, "/ui/sign-in") { request, context in try await signIn(request, context) },
            Route(.post, "/ui/sign-out") { request, context in try await signOut(request, context) },
            Route(.get, "/ui/static/:file") { _, context in
                guard let file = PageRenderer.staticFiles[context.pathParameter("file")] else {
                    throw RegistryError(.notFound, "no such file")
                }
                return Response(
                    status: .ok,
                    headers: [
                        .contentType: file.contentType, .cacheControl: "max-age=300",
                        .contentSecurityPolicy: Self.policy,
                    ],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.bytes)))
            },
        ]
    }

    // MARK: - Who is looking

    /// The signed-in session and its token, still valid; nil when there is none.
    private func signedIn(_ request: Request) async throws -> (WebSession, TokenRecord, cookie: String)? {
        let cookie = SignInSessions.cookie(SignInSessions.cookieName, in: request.headers[.cookie])
        guard let cookie, let session = try await registry.webSessions.session(cookie: cookie) else { return nil }
        guard let record = try await registry.metadata.token(hash: session.tokenHash) else {
            // The token was revoked: its sessions end with it.
            try await registry.webSessions.end(cookie: cookie)
            return nil
        }
        return (session, record, cookie)
    }

    /// A page for whoever may read: a signed-in user (`render` gets the token signed in with), or anyone when
    /// `--anonymous-read` is on; everyone else is sent to sign in. A `RegistryError` becomes an error page with its
    /// status.
    private func page(
        _ request: Request, _ context: RegistryRequestContext,
        _ render: (Viewer, TokenRecord?) async throws -> String
    ) async throws -> Response {
        let viewer: Viewer
        let signedIn = try await signedIn(request)
        if let (session, record, _) = signedIn {
            viewer = Viewer(name: record.name.value, canWrite: record.scope >= .write, csrfToken: session.csrfToken)
        } else if registry.anonymousRead {
            viewer = .anonymous
        } else {
            return Self.redirect(to: "/ui/sign-in?next=" + Self.queryEncoded(request.uri.path))
        }
        do {
            return Self.html(try await render(viewer, signedIn?.1))
        } catch let error as RegistryError {
            return errorPage(error, viewer: viewer)
        }
    }

    private func errorPage(_ error: RegistryError, viewer: Viewer) -> Response {
        let status = HTTPResponse.Status(code: error.httpStatus)
        return Self.html(
            Self.renderer.render(ErrorPage(status: status.code, message: error.message, viewer: viewer)), status: status
        )
    }

    // MARK: - Pages

    private func catalogue(_ request: Request, _ viewer: Viewer) async throws -> String {
        let metadata = registry.metadata
        var models: [CataloguePage.Model] = []
        for summary in try await metadata.listModels() {
            // A model deleted since the list was read is left out.
            guard let detail = try await metadata.model(summary.name) else { continue }
            var manifests: [VariantName: Manifest] = [:]
            if let newest = detail.versions.first { manifests = try await self.manifests(detail.name, newest) }
            models.append(
                CataloguePage.Model(detail: detail, latestVersion: summary.latestVersion, newestManifests: manifests))
        }
        let filter = request.uri.queryParameters.get("q") ?? ""
        return Self.renderer.render(CataloguePage(models: models, filter: filter, viewer: viewer))
    }

    private func modelOrVariant(_ request: Request, _ context: RegistryRequestContext, _ viewer: Viewer) async throws
        -> String
    {
        switch try ModelRoute(segments: context.parameters.getCatchAll()) {
        case .model(let name):
            let query = FormBody(request.uri.query ?? "")
            return try await modelPage(name, request, viewer, query: query, notice: notice(name, query))
        case .variant(let name, let version, let variant):
            guard let stored = try await registry.metadata.manifest(name, version, variant) else {
                throw RegistryError(.notFound, "variant '\(variant)' of \(name):\(version) not found")
            }
            let manifest = try stored.decoded()
            let page = VariantPage(
                stored: stored, manifest: manifest, card: try await card(of: manifest),
                origin: registry.origin(of: request), viewer: viewer)
            return Self.renderer.render(page)
        default:
            throw RegistryError(.notFound, "no such page: \(request.uri.path.prefix(300))")
        }
    }

    private func modelPage(
        _ name: ModelName, _ request: Request, _ viewer: Viewer, query: FormBody, notice: String? = nil,
        error: String? = nil
    ) async throws -> String {
        let metadata = registry.metadata
        guard let detail = try await metadata.model(name) else {
            throw RegistryError(.notFound, "model \(name) not found")
        }
        var manifests: [VersionName: [VariantName: Manifest]] = [:]
        for version in detail.versions { manifests[version.name] = try await self.manifests(name, version) }
        var histories: [AliasName: [AliasHistoryEntry]] = [:]
        var images: [ModelPage.ImageState] = []
        for alias in detail.aliases {
            histories[alias.name] = try await metadata.aliasHistory(name, alias.name)
            let stored = try await metadata.resolve(
                ModelReference(name: name, target: .alias(alias.name)), variant: nil)
            for status in try await ModelRoutes(registry: registry).imageStatus(name, stored.digest).images {
                images.append(
                    ModelPage.ImageState(
                        alias: alias.name, release: "\(stored.version) \(stored.variant)", layout: status.layout,
                        state: status.state.rawValue))
            }
        }
        let (calculator, calculatorError) = Calculator.parse(query)
        let page = ModelPage(
            detail: detail, manifests: manifests, histories: histories, images: images, calculator: calculator,
            calculatorText: query, calculatorError: calculatorError, origin: registry.origin(of: request),
            viewer: viewer, notice: notice, error: error)
        return Self.renderer.render(page)
    }

    /// The manifests of a version's variants, by variant; one deleted since the version was read is left out.
    private func manifests(_ name: ModelName, _ version: VersionSummary) async throws -> [VariantName: Manifest] {
        var manifests: [VariantName: Manifest] = [:]
        for variant in version.variants {
            manifests[variant.name] = try await registry.metadata.manifest(name, version.name, variant.name)?.decoded()
        }
        return manifests
    }

    /// What the action a form sent did, said from the registry's state now: a link cannot make the page say
    /// anything else.
    private func notice(_ name: ModelName, _ query: FormBody) async throws -> String? {
        if let text = query["moved"], let alias = try? AliasName(text),
            let target = try await registry.metadata.alias(name, alias)
        {
            return "\(name)@\(alias) points to \(target.version)" + (target.variant.map { " (variant \($0))" } ?? "")
                + ", moved by \(target.updatedBy) at \(target.updatedAt)."
        }
        if let text = query["deprecated"], let version = try? VersionName(text),
            let deprecation = try await registry.metadata.version(name, version)?.deprecation
        {
            return "\(name):\(version) is deprecated (by \(deprecation.by) at \(deprecation.at))."
        }
        return nil
    }

    /// The variant's `README.md`, read whole when it is small enough to show.
    private func card(of manifest: Manifest) async throws -> String? {
        guard let file = manifest.files.first(where: { $0.path.value.lowercased() == "readme.md" }), file.size > 0,
            file.size <= SafeMarkdown.maxLength
        else { return nil }
        var bytes: [UInt8] = []
        for try await chunk in try await registry.blobs.read(file.digest, range: 0..<file.size) {
            bytes += chunk.readableBytesView
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func audit(_ request: Request, _ viewer: Viewer, _ token: TokenRecord?) async throws -> String {
        // The audit log names every token and change: the API shows it to admins only, and so do the pages.
        guard let token else {
            throw RegistryError(.unauthorized, "the audit log needs a token with scope admin: sign in with one")
        }
        try registry.authorize(token, .admin)
        let query = FormBody(request.uri.query ?? "")
        let model = try query["model"].map { text throws(RegistryError) in try ModelName(text) }
        let before = try query["before"].map { text throws(RegistryError) in
            guard let value = Int64(text), value > 0 else {
                throw RegistryError(.invalidRequest, "before must be a positive entry number, not '\(text.prefix(40))'")
            }
            return value
        }
        let entries = try await registry.metadata.auditLog(
            AuditQuery(model: model, before: before, limit: Self.auditPageSize))
        return Self.renderer.render(
            AuditPage(entries: entries, model: model, pageSize: Self.auditPageSize, viewer: viewer))
    }

    // MARK: - Actions

    /// A form's action: only from a signed-in session whose token may write, only with the session's CSRF token.
    /// Success answers 303 to the model page, which says what happened; a refused move shows the page again with
    /// the reason (for a stale page: who moved the alias, and where to).
    private func action(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let form = try await Self.form(request, context)
        guard let (session, record, _) = try await signedIn(request) else {
            return errorPage(
                RegistryError(.unauthorized, "sign in to change anything: your session ended or never began"),
                viewer: .anonymous)
        }
        let viewer = Viewer(name: record.name.value, canWrite: record.scope >= .write, csrfToken: session.csrfToken)
        guard SignInSessions.matches(form["csrf"], session.csrfToken) else {
            return errorPage(
                RegistryError(.forbidden, "this form is not from your current session: reload the page and try again"),
                viewer: viewer)
        }
        do {
            try registry.authorize(record, .write)
        } catch {
            return errorPage(error, viewer: viewer)
        }
        let segments = context.parameters.getCatchAll()
        let route: ModelRoute
        switch Result(catching: { () throws(RegistryError) in try ModelRoute(segments: segments) }) {
        case .success(let parsed): route = parsed
        case .failure(let error): return errorPage(error, viewer: viewer)
        }
        do {
            let move: AliasMove
            switch route {
            case .aliases(let name):
                move = AliasMove(
                    model: name, alias: try AliasName(form["alias"] ?? ""),
                    kind: .set(try VersionName(form["version"] ?? ""), variant: nil), expectation: .absent,
                    actor: record.name.value)
            case .alias(let name, let alias):
                move = AliasMove(
                    model: name, alias: alias, kind: try Self.moveKind(form), expectation: try Self.expectation(form),
                    actor: record.name.value)
            case .deprecation(let name, let version):
                let reason = try DeprecationHeader.validatedReason(form["reason"])
                _ = try await registry.metadata.deprecate(name, version, reason: reason, actor: record.name.value)
                return Self.redirect(to: WebPaths.model(name) + "?deprecated=" + Self.queryEncoded(version.value))
            default:
                throw RegistryError(.notFound, "no such form: \(request.uri.path.prefix(300))")
            }
            _ = try await registry.moveAlias(move)
            return Self.redirect(to: WebPaths.model(move.model) + "?moved=" + Self.queryEncoded(move.alias.value))
        } catch let error as RegistryError {
            // The model page again, with the reason; its forms now carry the targets as they are.
            guard
                let html = try? await modelPage(route.model, request, viewer, query: FormBody(""), error: error.message)
            else { return errorPage(error, viewer: viewer) }
            return Self.html(html, status: HTTPResponse.Status(code: error.httpStatus))
        }
    }

    private static func moveKind(_ form: FormBody) throws(RegistryError) -> AliasMoveKind {
        switch form["do"] {
        case "set": return .set(try VersionName(form["version"] ?? ""), variant: nil)
        case "promote": return .promote(from: try AliasName(form["from"] ?? ""))
        case "rollback": return .rollback(to: nil)
        default: throw RegistryError(.invalidRequest, "unknown action '\((form["do"] ?? "").prefix(40))'")
        }
    }

    /// The target the page showed: the move happens only if the alias still points there.
    private static func expectation(_ form: FormBody) throws(RegistryError) -> AliasExpectation {
        guard let version = form["expect"] else {
            throw RegistryError(.invalidRequest, "the form did not say which target it was shown: reload the page")
        }
        return .target(
            try VersionName(version),
            variant: try form["expectVariant"].map { text throws(RegistryError) in try VariantName(text) })
    }

    // MARK: - Sign-in

    /// `next` is the page to go to once signed in: from the query of a redirect, or kept by a refused form.
    private func signInForm(
        _ request: Request, next: String? = nil, error: String? = nil, status: HTTPResponse.Status = .ok
    ) -> Response {
        let formToken = SignInSessions.randomToken()
        let next = Self.safeNext(next ?? request.uri.queryParameters.get("next"))
        var response = Self.html(
            Self.renderer.render(SignInPage(formToken: formToken, next: next, error: error)), status: status)
        response.headers.append(
            HTTPField(
                name: .setCookie,
                value: SignInSessions.setCookie(
                    SignInSessions.signInCookieName, formToken, maxAge: 1800, secure: registry.servesTLS)))
        return response
    }

    private func signIn(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let form = try await Self.form(request, context)
        let expected = SignInSessions.cookie(SignInSessions.signInCookieName, in: request.headers[.cookie]) ?? ""
        guard SignInSessions.matches(form["form"], expected) else {
            return signInForm(
                request, next: form["next"],
                error: "This sign-in form has expired or came from another site: sign in again.", status: .forbidden)
        }
        let hash = TokenSecret(form["token"] ?? "").hash
        guard form["token"] != nil, let record = try await registry.metadata.token(hash: hash) else {
            return signInForm(
                request, next: form["next"], error: "That token is unknown or revoked.", status: .unauthorized)
        }
        let (cookie, _) = try await registry.webSessions.start(tokenHash: hash)
        context.logger.info("signed in to the web pages", metadata: ["token": .string(record.name.value)])
        var response = Self.redirect(to: Self.safeNext(form["next"]))
        let lifetime = Int(registry.webSessions.lifetime.components.seconds)
        response.headers.append(
            HTTPField(
                name: .setCookie,
                value: SignInSessions.setCookie(
                    SignInSessions.cookieName, cookie, maxAge: lifetime, secure: registry.servesTLS)))
        response.headers.append(
            HTTPField(
                name: .setCookie,
                value: SignInSessions.setCookie(
                    SignInSessions.signInCookieName, "", maxAge: 0, secure: registry.servesTLS)))
        return response
    }

    private func signOut(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let form = try await Self.form(request, context)
        if let (session, _, cookie) = try await signedIn(request) {
            guard SignInSessions.matches(form["csrf"], session.csrfToken) else {
                return errorPage(
                    RegistryError(.forbidden, "this form is not from your current session: reload the page"),
                    viewer: .anonymous)
            }
            try await registry.webSessions.end(cookie: cookie)
        }
        var response = Self.redirect(to: registry.anonymousRead ? WebPaths.root : "/ui/sign-in")
        response.headers.append(
            HTTPField(
                name: .setCookie,
                value: SignInSessions.setCookie(SignInSessions.cookieName, "", maxAge: 0, secure: registry.servesTLS)))
        return response
    }

    /// Only a page of this site: anything else (another host, `//host`, a scheme) goes to the catalogue.
    private static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix(WebPaths.root), !next.contains("//"), !next.contains("\\") else {
            return WebPaths.root
        }
        return next
    }

    // MARK: - Responses

    /// Pages load only this site's stylesheet and script, cannot be framed, and are not kept by caches (their
    /// forms carry the session's CSRF token).
    private static let policy =
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: policy, .cacheControl: "no-store",
                .xContentTypeOptions: "nosniff", .referrerPolicy: "same-origin",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(to location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    private static func form(_ request: Request, _ context: RegistryRequestContext) async throws -> FormBody {
        let body = try await request.body.collect(upTo: 64 << 10)
        return FormBody(String(buffer: body))
    }

    private static func queryEncoded(_ text: String) -> String {
        text.addingPercentEncoding(
            withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+?#"))) ?? ""
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
}
