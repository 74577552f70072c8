import Foundation
import InMemoryStorage
import Synchronization
import Testing

@testable import WebUI

/// Sessions hold no token, end at their time or at sign-out, and CSRF tokens are compared whole.
@Suite struct SignInSessionTests {
    final class Clock: Sendable {
        let moment = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        func advance(_ seconds: TimeInterval) { moment.withLock { $0 += seconds } }
        func now() -> Date { moment.withLock { $0 } }
    }

    @Test func aSessionIsFoundByItsCookieUntilItsTimeOrSignOut() async throws {
        let clock = Clock()
        let store = InMemoryMetadataStore()
        let sessions = SignInSessions(store: store, lifetime: .seconds(60), now: { clock.now() })
        let (cookie, session) = try await sessions.start(tokenHash: "hash-of-token")
        #expect(cookie.count == 64)
        #expect(session.csrfToken.count == 64)
        #expect(cookie != session.csrfToken)
        // The store holds a hash of the cookie, never the cookie itself.
        #expect(session.idHash != cookie && session.tokenHash == "hash-of-token")
        #expect(try await sessions.session(cookie: cookie) == session)
        #expect(try await sessions.session(cookie: cookie + "0") == nil)
        #expect(try await sessions.session(cookie: nil) == nil)
        #expect(try await sessions.session(cookie: "") == nil)
        clock.advance(59)
        #expect(try await sessions.session(cookie: cookie) == session)
        clock.advance(2)
        #expect(try await sessions.session(cookie: cookie) == nil)

        let (second, _) = try await sessions.start(tokenHash: "hash-of-token")
        try await sessions.end(cookie: second)
        #expect(try await sessions.session(cookie: second) == nil)
        // Another server on the same store knows the sessions this one started.
        let (third, started) = try await sessions.start(tokenHash: "h")
        let replica = SignInSessions(store: store, now: { clock.now() })
        #expect(try await replica.session(cookie: third) == started)
    }

    @Test func csrfTokensMatchOnlyWhole() {
        let token = SignInSessions.randomToken()
        #expect(SignInSessions.matches(token, token))
        #expect(!SignInSessions.matches(nil, token))
        #expect(!SignInSessions.matches("", token))
        #expect(!SignInSessions.matches(String(token.dropLast()), token))
        #expect(!SignInSessions.matches(String(token.dropLast()) + "x", token))
        #expect(!SignInSessions.matches("", ""))
        #expect(SignInSessions.randomToken() != token)
    }

    @Test func cookiesAreHttpOnlyStrictAndSecureOverTLS() {
        let plain = SignInSessions.setCookie("modelreg_session", "v", maxAge: 60, secure: false)
        #expect(plain == "modelreg_session=v; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict")
        #expect(SignInSessions.setCookie("a", "b", maxAge: 0, secure: true).hasSuffix("; Secure"))
        #expect(SignInSessions.cookie("modelreg_session", in: "x=1; modelreg_session=abc ; y=2") == "abc")
        #expect(SignInSessions.cookie("modelreg_session", in: "modelreg_session_x=abc") == nil)
        #expect(SignInSessions.cookie("modelreg_session", in: nil) == nil)
    }

    @Test func formFieldsAreDecodedAsBrowsersEncodeThem() {
        let form = FormBody("csrf=a%2Bb&reason=too+slow%21&empty=&reason=second&=x&flag")
        #expect(form["csrf"] == "a+b")
        #expect(form["reason"] == "too slow!")
        #expect(form["empty"] == nil)
        #expect(form.fields["flag"] == "")
        #expect(form.fields.count == 4)
    }
}
