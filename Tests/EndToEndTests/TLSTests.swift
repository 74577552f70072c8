import Foundation
import Testing

/// `serve --tls-cert --tls-key` with a certificate made here by openssl for 127.0.0.1 and localhost:
/// curl and the CLI trust it through the CA file they are given, refuse it without, and a server given
/// a missing or mismatched certificate or key does not start.
@Suite(.serialized) struct TLSTests {
    /// A self-signed certificate (its own CA) and its key.
    struct Certificate {
        var certificate: URL
        var key: URL

        init(in directory: URL, name: String) throws {
            certificate = directory.appendingPathComponent("\(name).crt")
            key = directory.appendingPathComponent("\(name).key")
            let result = try shell(
                "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1"
                    + " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '\(key.path)' -out '\(certificate.path)'"
            )
            guard result.status == 0 else { throw ServerError("openssl req failed: \(result.output)") }
        }
    }

    @Test func httpsServesCurlAndTheCLIWithAPrivateCA() throws {
        let scratch = try Scratch()
        let trusted = try Certificate(in: scratch.root, name: "registry")
        let server = try ServerProcess(
            data: scratch.url("data"),
            extraArguments: ["--tls-cert", trusted.certificate.path, "--tls-key", trusted.key.path]
        )
        defer { server.kill() }
        #expect(server.url.hasPrefix("https://127.0.0.1:"))

        for host in ["127.0.0.1", "localhost"] {
            let ok = try shell(
                "curl -sS --cacert '\(trusted.certificate.path)' -o /dev/null -w '%{http_code}' https://\(host):\(server.port)/health/ready"
            )
            #expect(ok.status == 0 && ok.output == "200", "curl to \(host): \(ok.output)")
        }
        let untrustedCurl = try shell("curl -sS -o /dev/null https://127.0.0.1:\(server.port)/health/live")
        #expect(untrustedCurl.status == 60, "curl without the CA refuses the certificate: \(untrustedCurl.output)")
        let plain = try shell(
            "curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:\(server.port)/health/live")
        #expect(plain.output != "200", "no plain HTTP on the TLS port: \(plain.output)")

        var environment = server.environment
        environment["MODELREG_CA_CERT"] = trusted.certificate.path
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let push = try modelreg(["push", model.path, "tiny:1.0"], environment: environment)
        try #require(push.status == 0, "\(push)")
        let pulled = scratch.url("pulled")
        let pull = try modelreg(
            ["pull", "tiny:1.0", "--dest", pulled.path, "--ca-cert", trusted.certificate.path],
            environment: server.environment)
        #expect(pull.status == 0, "\(pull)")
        try expectSameTree(model, pulled)

        // Over TLS the web pages' cookies are Secure: the sign-in form's, and the session's.
        let base =
            "curl -sS -i --cacert '\(trusted.certificate.path)' -c '\(scratch.url("jar").path)' -b '\(scratch.url("jar").path)'"
        let form = try shell("\(base) https://127.0.0.1:\(server.port)/ui/sign-in").output
        #expect(form.contains("modelreg_sign_in=") && form.contains("SameSite=Strict; Secure"), "\(form)")
        let formToken = try #require(form.firstMatch(of: /name="form" value="([0-9a-f]+)"/)?.1, "\(form)")
        let session = try shell(
            "\(base) --data 'form=\(formToken)&token=\(server.adminToken)' https://127.0.0.1:\(server.port)/ui/sign-in"
        ).output
        #expect(
            session.contains("303") && session.contains("modelreg_session=")
                && session.contains("HttpOnly; SameSite=Strict; Secure"), "\(session)")

        // Without the CA, or with another one, the CLI stops at the handshake with exit 9 and says what to do.
        let other = try Certificate(in: scratch.root, name: "other")
        for caEnvironment in [[:], ["MODELREG_CA_CERT": other.certificate.path]] {
            let refused = try modelreg(["ls"], environment: server.environment.merging(caEnvironment) { $1 })
            #expect(refused.status == 9, "\(refused)")
            #expect(
                refused.stderr.hasPrefix("error: ") && refused.stderr.contains("certificate is not trusted"),
                "\(refused.stderr)")
            #expect(refused.stderr.contains("--ca-cert"), "it says what to do: \(refused.stderr)")
        }
        let unreadable = try modelreg(
            ["ls", "--ca-cert", scratch.url("missing.crt").path], environment: server.environment)
        #expect(unreadable.status == 64 && unreadable.stderr.contains("missing.crt"), "\(unreadable)")
        server.stop()
    }

    @Test func aMissingOrMismatchedCertificateStopsTheServerAtStart() throws {
        let scratch = try Scratch()
        let one = try Certificate(in: scratch.root, name: "one")
        let two = try Certificate(in: scratch.root, name: "two")
        let serve = ["serve", "--port", "0", "--data", scratch.url("data").path]
        let cases: [([String], String)] = [
            (["--tls-cert", scratch.url("absent.crt").path, "--tls-key", one.key.path], "absent.crt"),
            (["--tls-cert", one.certificate.path, "--tls-key", scratch.url("absent.key").path], "absent.key"),
            (["--tls-cert", one.certificate.path, "--tls-key", two.key.path], "does not fit"),
            (["--tls-cert", one.key.path, "--tls-key", one.key.path], "one.key"),
            (["--tls-cert", one.certificate.path], "--tls-key"),
        ]
        for (arguments, mention) in cases {
            let result = try modelreg(serve + arguments)
            #expect(result.status == 64, "\(arguments): \(result)")
            #expect(result.stderr.contains(mention), "\(arguments): \(result.stderr)")
            #expect(!result.stdout.contains("listening"), "\(arguments): \(result.stdout)")
            #expect(
                !FileManager.default.fileExists(atPath: scratch.url("data").path),
                "refused before the data directory is touched")
        }
    }
}
