import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL server for the tests: `initdb` into a temporary directory and `pg_ctl` on a free loopback
/// port, run as `nobody` when the tests run as root (PostgreSQL refuses to run as root). One server a test
/// process, started on first use and stopped when the process exits; each test takes a database of its own.
/// A test that stops the server takes one of its own (`dedicated`).
public final class PostgresServer: Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The superuser, trusted on loopback without a password.
    public let user = "modelreg"
    let directory: URL

    /// The server of this test process.
    public static func shared() throws -> PostgresServer {
        try lock.withLock {
            if let server = started { return server }
            let server = try PostgresServer()
            started = server
            atexit { PostgresServer.stopShared() }
            return server
        }
    }

    private nonisolated(unsafe) static var started: PostgresServer?
    private static let lock = NSLock()

    private static func stopShared() { started?.destroy() }

    /// A server of the caller's own, which it may stop and start again; `destroy()` it when done.
    public static func dedicated() throws -> PostgresServer { try PostgresServer() }

    /// Stops the server as a restart does, cutting every connection (a crash would lose the last commits:
    /// the tests' servers do not wait for the disk); `start()` brings it back on the same port.
    public func stop() throws {
        let stop = try run(tool("pg_ctl"), ["-D", data.path, "-m", "fast", "-w", "stop"])
        guard stop.status == 0 else { throw Failure("pg_ctl stop failed: \(stop.output)") }
    }

    /// Stops the server and removes its files.
    public func destroy() {
        _ = try? run(tool("pg_ctl"), ["-D", data.path, "-m", "immediate", "stop"])
        try? FileManager.default.removeItem(at: directory)
    }

    var data: URL { directory.appendingPathComponent("data") }

    private init() throws {
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("modelreg-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if getuid() == 0 { chown(directory.path, Self.nobody, Self.nogroup) }
        port = try Self.freePort()
        let initdb = try run(
            tool("initdb"), ["-D", data.path, "-U", user, "--auth=trust", "--encoding=UTF8", "--locale=C", "-N"])
        guard initdb.status == 0 else { throw Failure("initdb failed: \(initdb.output)") }
        try start()
    }

    /// Starts the server on its port and waits until it takes connections.
    public func start() throws {
        let options = [
            "-c listen_addresses=\(host)", "-p \(port)", "-c unix_socket_directories=\(directory.path)",
            "-c max_connections=400", "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ].joined(separator: " ")
        let start = try run(
            tool("pg_ctl"),
            [
                "-D", data.path, "-o", options, "-l", directory.appendingPathComponent("log").path, "-w", "-t", "60",
                "start",
            ])
        guard start.status == 0 else {
            let log = (try? String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)) ?? ""
            throw Failure("pg_ctl start failed: \(start.output)\n\(log.suffix(2000))")
        }
    }

    /// A new, empty database; its name.
    public func createDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try psql("CREATE DATABASE \(name)")
        return name
    }

    public func dropDatabase(_ name: String) {
        _ = try? psql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs SQL as the superuser in database `postgres`.
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let result = try run(
            "/usr/bin/psql",
            ["-h", host, "-p", String(port), "-U", user, "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            asServerUser: false)
        guard result.status == 0 else { throw Failure("psql \(sql): \(result.output)") }
        return result.output
    }

    /// `postgres://user@host:port/database`.
    public func url(_ database: String) -> String { "postgres://\(user)@\(host):\(port)/\(database)" }

    func tool(_ name: String) throws -> String {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let path = "/usr/lib/postgresql/\(version)/bin/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw Failure("no \(name) under /usr/lib/postgresql: install Debian's postgresql package")
    }

    private static let nobody: uid_t = 65534
    private static let nogroup: gid_t = 65534

    /// Runs a command, as `nobody` when this process is root and the command is the server's; output and
    /// errors together. Through posix_spawn and waitpid rather than Foundation's Process, whose wait did not
    /// return for `pg_ctl start` (the server it leaves running keeps the process group's descriptors).
    func run(_ executable: String, _ arguments: [String], asServerUser: Bool = true) throws -> (
        status: Int32, output: String
    ) {
        var argv = [executable] + arguments
        if asServerUser && getuid() == 0 {
            argv = ["/usr/bin/setpriv", "--reuid=\(Self.nobody)", "--regid=\(Self.nogroup)", "--clear-groups"] + argv
        }
        let output = directory.appendingPathComponent("out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o666)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // The child gets these three and nothing else the test process has open: the server pg_ctl starts
        // counts every descriptor it inherits against its limit, and refused to start beside ~900 of them.
        guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else {
            throw Failure("cannot keep the test process's descriptors from \(argv[0]): glibc 2.34 or later is needed")
        }
        var pid: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw Failure("cannot run \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure("waitpid \(argv[0]): \(errno)") }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        return (
            exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), text.trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34), which Swift's Glibc module does not declare.
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: AddCloseFrom? = dlsym(
        dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np"
    ).map { unsafeBitCast($0, to: AddCloseFrom.self) }

    /// A port nothing listens on now: bound to port 0, read back, closed.
    public static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure("socket: \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, length) == 0
                    && getsockname(socket, $0, &length) == 0
            }
        }
        guard bound else { throw Failure("bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
