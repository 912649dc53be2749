import Foundation
import XAI

/// Image files, folders (searched recursively) and text manifests (one path per line), in a
/// deterministic order; `--shard i/n` keeps every n-th from the i-th.
public func collectInputs(_ arguments: [String], shard: String?) throws -> [String] {
    let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "npy"]
    var files: [String] = []
    let fm = FileManager.default
    for argument in arguments {
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: argument, isDirectory: &isDirectory) else {
            throw XAIError.file(path: argument, reason: "no such file or folder")
        }
        let ext = (argument as NSString).pathExtension.lowercased()
        if isDirectory.boolValue {
            let found = (fm.enumerator(atPath: argument)?.allObjects as? [String] ?? [])
                .filter { imageExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
                .sorted()
                .map { (argument as NSString).appendingPathComponent($0) }
            files += found
        } else if ext == "txt" {
            guard let text = try? String(contentsOfFile: argument, encoding: .utf8) else {
                throw XAIError.file(path: argument, reason: "cannot be read as a UTF-8 manifest")
            }
            let base = FileSystem.parentFolder(of: argument)
            files += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
                .map { $0.hasPrefix("/") ? $0 : (base as NSString).appendingPathComponent($0) }
        } else {
            files.append(argument)
        }
    }
    guard let shard else { return files }
    let parts = shard.split(separator: "/").compactMap { Int($0) }
    guard parts.count == 2, parts[1] >= 1, (0..<parts[1]).contains(parts[0]) else {
        throw XAIError.invalidArgument(parameter: "shard", value: shard, reason: "must be i/n with 0 <= i < n")
    }
    return files.enumerated().filter { $0.offset % parts[1] == parts[0] }.map(\.element)
}

/// Each file's output folder in a run over `files`: the file's name without its extension, and
/// `name-2`, `name-3`, ... for later files of the same name (as a single `xai explain` names
/// them), so every worker of a run split by a driver writes where one process would.
public func outputStems(_ files: [String]) -> [String] {
    var used = Set<String>()
    return files.map { path in
        let base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        var stem = base, k = 2
        while used.contains(stem) { stem = "\(base)-\(k)"; k += 1 }
        used.insert(stem)
        return stem
    }
}

/// A progress line on standard error, redrawn in place, only on a terminal.
public final class ProgressLine: @unchecked Sendable {
    public let enabled: Bool
    private let lock = NSLock()
    private var prefix = ""

    public init(quiet: Bool) { enabled = !quiet && isatty(2) == 1 }

    /// Starts a new line of work: `prefix` stays in front of every update.
    public func begin(_ prefix: String) {
        lock.lock()
        self.prefix = prefix
        lock.unlock()
        update("")
    }

    public func update(_ text: String) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + prefix + text).utf8))
    }

    public func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// "1:02:03" or "2:03".
public func duration(_ seconds: Double) -> String {
    let s = Int(seconds.isFinite ? seconds.rounded() : 0)
    return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
}

/// This process's resident set size in KiB (Linux /proc; 0 elsewhere).
public func residentKilobytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}
