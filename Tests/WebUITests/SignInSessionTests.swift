import Foundation
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

    @Test func aSessionIsFoundByItsCookieUntilItsTimeOrSignOut() {
        let clock = Clock()
        let sessions = SignInSessions(lifetime: .seconds(60), now: { clock.now() })
        let (cookie, session) = sessions.start(tokenHash: "hash-of-token")
        #expect(cookie.count == 64)
        #expect(session.csrfToken.count == 64)
        #expect(cookie != session.csrfToken)
        #expect(!cookie.contains("hash-of-token"))
        #expect(sessions.session(cookie: cookie) == session)
        #expect(sessions.session(cookie: cookie + "0") == nil)
        #expect(sessions.session(cookie: nil) == nil)
        #expect(sessions.session(cookie: "") == nil)
        clock.advance(59)
        #expect(sessions.session(cookie: cookie) == session)
        clock.advance(2)
        #expect(sessions.session(cookie: cookie) == nil)

        let (second, _) = sessions.start(tokenHash: "hash-of-token")
        sessions.end(cookie: second)
        #expect(sessions.session(cookie: second) == nil)
    }

    @Test func aFullStoreDropsTheOldestSessionsFirst() {
        let clock = Clock()
        let sessions = SignInSessions(lifetime: .seconds(3600), limit: 3, now: { clock.now() })
        var cookies: [String] = []
        for _ in 0..<5 {
            cookies.append(sessions.start(tokenHash: "h").cookie)
            clock.advance(1)
        }
        #expect(sessions.session(cookie: cookies[0]) == nil)
        #expect(sessions.session(cookie: cookies[1]) == nil)
        #expect(cookies[2...].allSatisfy { sessions.session(cookie: $0) != nil })
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
