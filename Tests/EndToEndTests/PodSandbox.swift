import Foundation
import TestServers
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A container's file system as the kubelet sets it up, without a cluster: a private mount namespace
/// holding a read-only root (the host's `/usr`, `/etc` and `/opt` bound read-only, `/tmp` read-only too),
/// the binary at `/usr/local/bin/modelreg`, and each volume a tmpfs of its own on its mount path. Commands
/// run in it chrooted, as an unprivileged user (`setpriv`), with no capabilities and only the environment
/// given. The network is the host's, so a registry on the loopback answers.
///
/// The namespace lives as long as a holder process (`unshare -m … sh` reading a pipe only this object
/// writes to, so it ends with the object or with the test process, never outliving either); commands enter
/// it with `nsenter`, so what a volume holds survives from one command to the next, as in a pod whose init
/// container restarts. The test process sees the pod's files through `/proc/<holder>/root`.
final class PodSandbox {
    struct Volume {
        var mountPath: String
        /// tmpfs options: an `emptyDir` is 0777; a `hostPath` or a volume with an `fsGroup` gets its owner here.
        var options: String
    }

    /// Whether mount namespaces, tmpfs and chroot work here: root, and a container that permits them. Probed once.
    static let available: Bool = {
        guard geteuid() == 0 else { return false }
        return
            (try? shell("unshare -m --propagation private sh -c 'mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt'")
            .status) == 0
    }()

    static let reason: Comment =
        "needs root and a container that permits mount namespaces (unshare -m), tmpfs mounts and chroot"

    let root: String
    private let holder: Process
    private let holderInput = Pipe()

    init(scratch: URL, volumes: [Volume], binary: URL = modelregBinary) throws {
        root = scratch.appendingPathComponent("pod-root-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["-m", "--propagation", "private", "/bin/sh", "-c", "read -r _ || true"]
        holder.standardInput = holderInput
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.runAlone()
        // Ready once it runs in a mount namespace of its own.
        let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        let ready = Date().addingTimeInterval(10)
        while Date() < ready,
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(holder.processIdentifier)/ns/mnt"))
                ?? ours == ours
        {
            usleep(10_000)
        }
        let volumeMounts = volumes.map { volume in
            "mkdir -p '.\(volume.mountPath)'"
        }.joined(separator: "\n")
        let volumeTmpfs = volumes.enumerated().map { index, volume in
            "mount -t tmpfs -o '\(volume.options)' volume\(index) '.\(volume.mountPath)'"
        }.joined(separator: "\n")
        // Everything a container image has, read-only; the root itself is remounted read-only before the
        // volumes are mounted on it, as readOnlyRootFilesystem does.
        let setup = """
            set -e
            mount -t tmpfs -o size=4m,mode=0755 pod-root '\(root)'
            cd '\(root)'
            for directory in usr etc opt; do
                mkdir "$directory"
                mount --rbind "/$directory" "$directory"
                mount -o remount,bind,ro "$directory"
            done
            for link in bin sbin lib lib32 lib64 libx32; do
                if [ -L "/$link" ]; then ln -s "$(readlink "/$link")" "$link"; fi
            done
            mkdir -p dev proc tmp binary
            mount --rbind /dev dev
            mount --rbind /proc proc
            touch binary/modelreg
            mount --bind '\(binary.path)' binary/modelreg
            mount -o remount,bind,ro binary/modelreg
            \(volumeMounts)
            mount -o remount,ro '\(root)'
            \(volumeTmpfs)
            """
        let result = try runInNamespace(["sh", "-c", setup])
        guard result.status == 0 else {
            end()
            throw ServerError("setting up the pod's file system failed: \(result)")
        }
    }

    /// The path, as the test process sees it, of a path inside the pod.
    func hostPath(_ podPath: String) -> String { "/proc/\(holder.processIdentifier)/root\(root)\(podPath)" }

    /// The binary's path inside the pod.
    static let binary = "/binary/modelreg"

    /// Starts `arguments` (the container's command, its first word a path inside the pod) in the pod as
    /// `uid:gid` with the supplementary `groups`, no capabilities but `capabilities` (as the manifest's
    /// `add` names them: `CHOWN`), and only `environment`.
    func start(
        _ arguments: [String], uid: Int = 10001, gid: Int = 10001, groups: [Int] = [], capabilities: [String] = [],
        environment: [String: String] = [:]
    ) throws -> CommandProcess {
        let identity =
            ["--reuid=\(uid)", "--regid=\(gid)"]
            + (groups.isEmpty ? ["--clear-groups"] : ["--groups=\(groups.map(String.init).joined(separator: ","))"])
        let kept = (["-all"] + capabilities.map { "+" + $0.lowercased() }).joined(separator: ",")
        let command =
            [
                "-t", String(holder.processIdentifier), "-m", "--", Self.chroot, root,
                "/usr/bin/setpriv",
            ] + identity + ["--no-new-privs", "--inh-caps=-all", "--bounding-set=\(kept)", "--"] + arguments
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/"]
        env.merge(environment) { $1 }
        return try CommandProcess(
            command, environment: env, executable: URL(fileURLWithPath: "/usr/bin/nsenter"), inheritEnvironment: false)
    }

    func run(_ arguments: [String], uid: Int = 10001, gid: Int = 10001, environment: [String: String] = [:]) throws
        -> CommandResult
    {
        try start(arguments, uid: uid, gid: gid, environment: environment).wait()
    }

    /// A volume replaced by a new, empty one: the next pod on the node.
    func remount(_ mountPath: String, options: String) throws {
        let result = try runInNamespace([
            "sh", "-c", "umount '\(root)\(mountPath)' && mount -t tmpfs -o '\(options)' volume '\(root)\(mountPath)'",
        ])
        guard result.status == 0 else { throw ServerError("remounting \(mountPath) failed: \(result)") }
    }

    /// Runs a command in the namespace as root, outside the chroot (the sandbox's own setup).
    private func runInNamespace(_ arguments: [String]) throws -> CommandResult {
        try CommandProcess(
            ["-t", String(holder.processIdentifier), "-m", "--"] + arguments,
            executable: URL(fileURLWithPath: "/usr/bin/nsenter")
        ).wait()
    }

    /// Where the host keeps `chroot`: an absolute path, since `nsenter` runs with the pod's `PATH`.
    private static let chroot =
        ["/usr/sbin/chroot", "/sbin/chroot", "/usr/bin/chroot"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "chroot"

    private func end() {
        // The namespace, and with it every mount of the pod, goes away with its last process.
        try? holderInput.fileHandleForWriting.close()
        holder.waitUntilExit()
    }

    deinit {
        end()
        try? FileManager.default.removeItem(atPath: root)
    }
}
