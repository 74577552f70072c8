import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real S3-compatible server for the tests: moto's server mode (`python3 -m moto.server`, PyPI's `moto[server]`) on
/// a free loopback port, everything in memory. By default moto accepts any credentials and checks no signature;
/// `authenticating()` starts one that checks them. One server of each kind a test process, started on first use and
/// stopped when the process exits; each test takes a bucket of its own.
public final class MotoServer: Sendable {
    /// Credentials for the shared server, which takes any.
    public static let accessKey = "test-access"
    public static let secretKey = "test-secret"

    public let port: Int
    /// `http://127.0.0.1:PORT`.
    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// The server that accepts any credentials, of this test process.
    public static func shared() throws -> MotoServer {
        try lock.withLock {
            if let server = sharedServer { return server }
            let server = try MotoServer()
            sharedServer = server
            return server
        }
    }

    /// The server that checks every request's signature, of this test process, with a bucket and the key pair of
    /// the one IAM user allowed everything. Moto checks signatures only once authentication is on, and then only
    /// for keys it issued itself, so the shared server keeps it off for the fixed test credentials.
    public static func authenticating() throws -> AuthenticatingMoto {
        try lock.withLock {
            if let server = authenticatingServer { return server }
            let server = try MotoServer()
            let output = try python(
                """
                import boto3, json, sys
                def client(service):
                    return boto3.client(service, endpoint_url=sys.argv[1], region_name="us-east-1",
                                        aws_access_key_id="setup", aws_secret_access_key="setup")
                client("s3").create_bucket(Bucket="signed")
                iam = client("iam")
                iam.create_user(UserName="modelreg")
                iam.put_user_policy(UserName="modelreg", PolicyName="everything", PolicyDocument=json.dumps(
                    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
                key = iam.create_access_key(UserName="modelreg")["AccessKey"]
                print(key["AccessKeyId"], key["SecretAccessKey"])
                """, [server.endpoint])
            let keyPair = output.split(separator: " ")
            guard keyPair.count == 2 else { throw Failure("moto's IAM gave no key pair: \(output)") }
            // Moto reads the count from the raw body, which a form's Content-Type would have Flask parse away.
            let authentication = try run(
                [
                    "curl", "-sS", "-f", "-H", "Content-Type: text/plain", "--data", "0",
                    "\(server.endpoint)/moto-api/reset-auth",
                ])
            guard authentication.status == 0 else {
                throw Failure("turning moto's authentication on failed: \(authentication.output)")
            }
            let authenticating = AuthenticatingMoto(
                server: server, bucket: "signed", accessKey: String(keyPair[0]), secretKey: String(keyPair[1]))
            authenticatingServer = authenticating
            return authenticating
        }
    }

    private nonisolated(unsafe) static var sharedServer: MotoServer?
    private nonisolated(unsafe) static var authenticatingServer: AuthenticatingMoto?
    /// Every server started and its directory, for the exit handler: a `Process` is not `Sendable`, so no server
    /// holds its own.
    private nonisolated(unsafe) static var started: [(process: Process, directory: URL)] = []
    private static let lock = NSLock()

    private init() throws {
        port = try PostgresServer.freePort()
        let directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("modelreg-moto-\(port)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A file, not a pipe: nobody reads moto's request log, and a full pipe would stop the server.
        let logPath = directory.appendingPathComponent("moto.log").path
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
            let log = FileHandle(forWritingAtPath: logPath)
        else { throw Failure("cannot write \(logPath)") }
        defer { try? log.close() }
        let process = try Self.start(
            ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], output: log)
        if Self.started.isEmpty { atexit { MotoServer.stopAll() } }
        Self.started.append((process, directory))
        try waitUntilListening(process, logPath: logPath)
    }

    private func waitUntilListening(_ process: Process, logPath: String) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            guard process.isRunning else {
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                // moto itself, or the Flask that its server mode adds.
                if let missing = log.split(separator: "\n").last(where: { $0.contains("No module named") }) {
                    throw Failure("python3 cannot run moto's server (\(missing)): install moto[server] from PyPI")
                }
                throw Failure("moto exited with status \(process.terminationStatus): \(log.suffix(2000))")
            }
            if Self.acceptsConnections(port: port) { return }
            usleep(100_000)
        }
        throw Failure("moto did not listen on port \(port) within 30 s; its log is \(logPath)")
    }

    private static func stopAll() {
        for (process, directory) in started {
            // SIGKILL: moto inherits the signals the test process blocks, SIGTERM among them, and keeps nothing.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// A new, empty bucket; its name. Moto takes an unsigned PUT.
    public func createBucket() throws -> String {
        let name = "b-" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let result = try Self.run(["curl", "-sS", "-f", "-X", "PUT", "\(endpoint)/\(name)"])
        guard result.status == 0 else { throw Failure("creating bucket \(name) failed: \(result.output)") }
        return name
    }

    /// `s3://BUCKET[/PREFIX]?endpoint=…&region=us-east-1`, as `--blobs` takes it.
    public func url(bucket: String, prefix: String = "") -> String {
        "s3://\(bucket)\(prefix.isEmpty ? "" : "/\(prefix)")?endpoint=\(endpoint)&region=us-east-1"
    }

    /// Runs a Python script (`python3 -c`) with `arguments` as `sys.argv[1...]`; what it prints, trimmed.
    public static func python(_ script: String, _ arguments: [String]) throws -> String {
        let result = try run(["python3", "-c", script] + arguments)
        guard result.status == 0 else {
            if result.output.contains("No module named 'boto3'") {
                throw Failure("python3 has no boto3: install boto3 from PyPI (see .ci/test)")
            }
            throw Failure("python3 exited with status \(result.status): \(result.output)")
        }
        return result.output
    }

    /// Runs a command found on PATH; its status and its output and errors together, trimmed.
    static func run(_ command: [String]) throws -> (status: Int32, output: String) {
        let outputPath = NSTemporaryDirectory() + "modelreg-moto-run-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        guard FileManager.default.createFile(atPath: outputPath, contents: nil),
            let output = FileHandle(forWritingAtPath: outputPath)
        else { throw Failure("cannot write \(outputPath)") }
        let process = try start(command, output: output)
        try? output.close()
        process.waitUntilExit()
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Starts a command found on PATH, its output and errors into `output`, nothing on its input.
    private static func start(_ command: [String], output: FileHandle) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        do {
            try process.runAlone()
        } catch {
            throw Failure("cannot run \(command.joined(separator: " ")): \(error)")
        }
        return process
    }

    private static func acceptsConnections(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}

/// A moto server that checks signatures, a bucket on it, and the key pair it accepts.
public struct AuthenticatingMoto: Sendable {
    public let server: MotoServer
    public let bucket: String
    public let accessKey: String
    public let secretKey: String
}
