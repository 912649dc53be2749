import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes files and folders with errors in plain words: the path, the operation and the system's
/// reason (`OUT/img/saliency.npy: cannot write: no space left on device`), where Foundation's
/// errors print their domain, code and user-info dictionary. Every file the engine writes goes
/// through here, so the command line, C and Python report the same words.
public enum FileSystem {
    /// What the system says about `code` (an `errno`), in lower case.
    static func reason(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        return text.prefix(1).lowercased() + text.dropFirst()
    }

    static func failure(_ path: String, _ operation: String, _ code: Int32 = errno) -> XAIError {
        .file(path: path, reason: "cannot \(operation): \(reason(code))")
    }

    /// Writes every byte of `data` to `fd`; the `errno` of a failure.
    static func writeAll(_ fd: Int32, _ data: Data) -> Int32? {
        data.withUnsafeBytes { bytes -> Int32? in
            guard let base = bytes.baseAddress else { return nil }
            var written = 0
            while written < bytes.count {
                let n = Glibc.write(fd, base + written, bytes.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += n
            }
            return nil
        }
    }

    /// The folder that holds `path`: everything before its last component, trailing slashes
    /// ignored ("" for a bare name, "/" for a name at the root), as NSString's
    /// `deletingLastPathComponent` gives it. That one traps in swift-corelibs-foundation on a
    /// one-character path ("a"), which `--out a`, or any relative path under a one-letter folder,
    /// reached.
    public static func parentFolder(of path: String) -> String {
        var rest = Substring(path)
        while rest.count > 1, rest.hasSuffix("/") { rest = rest.dropLast() }
        guard let slash = rest.lastIndex(of: "/") else { return "" }
        var parent = rest[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return parent.isEmpty ? "/" : String(parent)
    }

    /// Creates `path` and the folders above it, where missing.
    /// - Throws: ``XAIError/file(path:reason:)`` naming the folder that could not be made and why.
    public static func createDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw XAIError.file(path: path, reason: "cannot create folder: a file of that name is in the way") }
            return
        }
        let parent = parentFolder(of: path)
        if !parent.isEmpty, parent != path { try createDirectory(parent) }
        if mkdir(path, 0o755) != 0, errno != EEXIST { throw failure(path, "create folder") }
    }

    /// Writes `data` to `path` whole or not at all: into a temporary file beside it, then renamed
    /// over it, so a reader (or a resumed run) never sees half a file.
    /// - Throws: ``XAIError/file(path:reason:)`` with the operation that failed (create, write, rename).
    public static func write(_ data: Data, to path: String) throws {
        let temporary = path + ".partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "create") }
        let failed = writeAll(fd, data)
        // A full disk may only show when the data reaches it.
        let closeFailure: Int32? = close(fd) != 0 ? errno : nil
        if let code = failed ?? closeFailure {
            unlink(temporary)
            throw failure(path, "write", code)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw failure(path, "rename into place", code)
        }
    }
}

/// A file opened for appending lines (`results.jsonl`, `metrics.jsonl`), created with its folder
/// where missing; each write fails with the path and the reason.
public final class OutputFile {
    public let path: String
    private let fd: Int32

    public init(appendingTo path: String) throws {
        let folder = FileSystem.parentFolder(of: path)
        if !folder.isEmpty { try FileSystem.createDirectory(folder) }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystem.failure(path, "open for writing") }
        self.path = path
    }

    /// Appends `data` (one whole line: appends of one line each are not interleaved).
    public func write(_ data: Data) throws {
        if let failed = FileSystem.writeAll(fd, data) { throw FileSystem.failure(path, "write", failed) }
    }

    private var closed = false

    public func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd)
    }

    deinit { close() }
}
