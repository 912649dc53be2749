import CBLAS
import Foundation

/// Facts about the host machine, for `xai devices` and benchmark headers.
public struct HostInfo: Sendable, Codable {
    public let cpuModel: String
    public let logicalCores: Int
    public let memoryBytes: Int
    /// OpenBLAS's build configuration string (kernel family and threading).
    public let blasConfig: String
    public let blasThreads: Int
    /// oneDNN's version and the instruction set its kernels dispatched to, when it opened.
    public let oneDNN: String?

    /// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
    static func cpuModelName() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    public static func current() -> HostInfo {
        HostInfo(cpuModel: cpuModelName(),
                 logicalCores: ProcessInfo.processInfo.activeProcessorCount,
                 memoryBytes: Int(clamping: ProcessInfo.processInfo.physicalMemory),
                 blasConfig: String(cString: openblas_get_config()),
                 blasThreads: Int(openblas_get_num_threads()),
                 oneDNN: OneDNN.shared.map { "oneDNN \($0.version), \($0.isa) kernels, \($0.blockSize)-channel blocks" })
    }
}
