import Foundation
import XAICore

/// Compiled OpenCL programs kept on disk between processes, so a process does not compile the
/// kernels again (as PyOpenCL and MIOpen keep theirs). A program built from OpenCL C source is
/// compiled on each `clBuildProgram` unless the driver keeps a cache of its own, which OpenCL does
/// not promise (PoCL keeps one; what NVIDIA's `~/.nv/ComputeCache` keeps of OpenCL programs built
/// from source is not known here), and the unrolled tiled and tensor-core kernels are large. So
/// this cache is on for GPUs, off elsewhere, unless `XAI_PROGRAM_CACHE=on|off` says.
///
/// An entry is the driver's own binary (`CL_PROGRAM_BINARIES`), in
/// `<cache folder>/programs/<family>-<hash>.bin`, behind a header naming everything it depends on
/// (the device, its platform and driver, the source text's hash and the build options) and the
/// binary's own length and hash. An entry is used only if that header matches in full, so a
/// truncated or altered file never reaches the driver; for one that does not match, or that the
/// driver refuses or fails to build, the program is compiled from source again and the entry
/// replaced. A driver that refuses the very binary it then makes again would repeat that on every
/// run, so the entry becomes a note saying so (``Entry/refused``): later runs compile that program
/// from source without trying or storing a binary, until the identity (the driver) changes.
/// Writes are atomic
/// (a temporary file renamed), and the folder is kept under ``capacity`` bytes by removing the
/// oldest entries. Nothing here fails a build: the cache can only save time.
public struct ProgramBinaryCache: Sendable {
    let folder: URL
    /// Bytes the folder may hold; the oldest entries go first past it.
    let capacity: Int

    static let magic = "xai OpenCL program binary 1\n"
    /// What the folder may hold unless told otherwise: 256 MiB.
    static let defaultCapacity = 256 << 20
    /// The line that ends a refused entry's header, in place of the binary's length and hash.
    static let refusedLine = "refused by this driver: compiled from source on every run\n"

    /// The whole of a refused entry for `identity`: what ``markRefused(family:identity:)`` writes
    /// and ``load(family:identity:)`` recognizes.
    static func refusedNote(identity: String) -> Data {
        Data((magic + identity + "\n" + refusedLine).utf8)
    }

    /// What a header-checked entry holds.
    enum Entry: Equatable {
        case binary([UInt8])
        /// The driver refused the binary it made for this identity (``markRefused(family:identity:)``).
        case refused
    }

    /// The cache a backend on `info` uses: `XAI_PROGRAM_CACHE=on|off`, else on for GPUs only.
    static func forDevice(_ info: OpenCLDeviceInfo, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ProgramBinaryCache? {
        let folder = GEMMTuningCache.folder(environment: environment).appendingPathComponent("programs")
        switch environment["XAI_PROGRAM_CACHE"]?.lowercased() {
        case nil, "": return info.isGPU ? ProgramBinaryCache(folder: folder, capacity: defaultCapacity) : nil
        case "on": return ProgramBinaryCache(folder: folder, capacity: defaultCapacity)
        case "off": return nil
        case let text?:
            throw XAIError.invalidArgument(parameter: "XAI_PROGRAM_CACHE", value: text, reason: "must be on or off")
        }
    }

    /// What the backend's details and `xai devices` say of kernel binaries kept by `cache` (`nil`:
    /// none); `reportsBuilds`: under `XAI_KERNEL_BUILD_LOG=1`, which compiles from source.
    static func summary(_ cache: ProgramBinaryCache?, isGPU: Bool, reportsBuilds: Bool) -> String {
        if reportsBuilds { return "compiled every run under XAI_KERNEL_BUILD_LOG=1 (for the compiler's report)" }
        if let cache { return "kept between runs in \(cache.folder.path) (XAI_PROGRAM_CACHE=off compiles every run)" }
        return "compiled every run" + (isGPU ? " (XAI_PROGRAM_CACHE=off)" : " (the driver may keep its own; XAI_PROGRAM_CACHE=on keeps them)")
    }

    /// The same for the backends this process would open on `info` (for `xai devices`).
    public static func summary(for info: OpenCLDeviceInfo, environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        do {
            return summary(try forDevice(info, environment: environment), isGPU: info.isGPU,
                           reportsBuilds: environment["XAI_KERNEL_BUILD_LOG"] == "1")
        } catch {
            return "\(error)"
        }
    }

    /// What an entry depends on: the device, its platform and driver, the source and the options.
    static func identity(_ info: OpenCLDeviceInfo, family: String, source: String, options: String) -> String {
        "\(info.vendor) | \(info.name) | \(info.platformName) | driver \(info.driverVersion) | \(family).cl \(fnv1a(source)) | \(options)"
    }

    func file(family: String, identity: String) -> URL {
        folder.appendingPathComponent("\(family)-\(Self.fnv1a(identity)).bin")
    }

    static func header(identity: String, binary: [UInt8]) -> [UInt8] {
        Array((magic + identity + "\n" + "\(binary.count) bytes, fnv1a \(fnv1a(binary))\n").utf8)
    }

    /// The stored entry for `identity`, or `nil`: none, unreadable, a header naming something else,
    /// or a binary whose length or hash is not the header's. A hit marks the entry used (its
    /// modification time), so ``trim()`` removes the least recently used first.
    func load(family: String, identity: String) -> Entry? {
        let url = file(family: family, identity: identity)
        guard let data = try? Data(contentsOf: url) else { return nil }
        let entry: Entry
        if data == Self.refusedNote(identity: identity) {
            entry = .refused
        } else {
            // The header's last line (the binary's length and hash) ends the header; the whole
            // header, identity included, is then compared with the one this binary would have.
            let prefix = (Self.magic + identity + "\n").utf8.count
            // A file shorter than the prefix has no newline past it.
            guard let newline = data.dropFirst(prefix).firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            let binary = Array(data[(newline + 1)...])
            guard !binary.isEmpty, data.prefix(newline + 1).elementsEqual(Self.header(identity: identity, binary: binary)) else { return nil }
            entry = .binary(binary)
        }
        try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: url.path)
        return entry
    }

    /// Replaces the entry for `identity` by a note that the driver refuses its own binary.
    func markRefused(family: String, identity: String) {
        write(Self.refusedNote(identity: identity), family: family, identity: identity)
    }

    /// Stores `binary` for `identity` (atomically), then trims the folder to ``capacity``; a folder
    /// that cannot be written is left as it is.
    func store(_ binary: [UInt8], family: String, identity: String) {
        guard !binary.isEmpty else { return }
        var data = Data(Self.header(identity: identity, binary: binary))
        data.append(contentsOf: binary)
        write(data, family: family, identity: identity)
    }

    private func write(_ data: Data, family: String, identity: String) {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try data.write(to: file(family: family, identity: identity), options: .atomic)
        } catch {
            return
        }
        trim()
    }

    /// Removes the least recently written or used entries (by modification time) until the folder
    /// holds at most ``capacity`` bytes.
    func trim() {
        let keys: [URLResourceKey] = [.contentModificationDateKey, .fileSizeKey]
        guard let urls = try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: keys) else { return }
        var entries = urls.filter { $0.pathExtension == "bin" }.compactMap { url -> (url: URL, date: Date, size: Int)? in
            guard let values = try? url.resourceValues(forKeys: Set(keys)) else { return nil }
            return (url, values.contentModificationDate ?? .distantPast, values.fileSize ?? 0)
        }
        var total = entries.reduce(0) { $0 + $1.size }
        entries.sort { $0.date < $1.date }
        for entry in entries where total > capacity {
            if (try? FileManager.default.removeItem(at: entry.url)) != nil { total -= entry.size }
        }
    }

    static func fnv1a(_ text: String) -> String { fnv1a(Array(text.utf8)) }

    /// FNV-1a, 64 bits, in hex: stable across processes (unlike Swift's `hashValue`).
    static func fnv1a<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return String(hash, radix: 16)
    }
}
