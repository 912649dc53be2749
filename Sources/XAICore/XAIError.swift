/// Every error the engine reports. Cases carry what a user needs to act: the op, the shapes,
/// the device, the file.
public enum XAIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Operand shapes do not fit the op.
    case shapeMismatch(op: String, message: String)
    /// An argument is out of its domain (negative stride, unknown axis, bad flag value).
    case invalidArgument(op: String, message: String)
    /// The requested device cannot be used; `reason` says why (no OpenCL platform, index too high).
    case deviceUnavailable(device: String, reason: String)
    /// An array from one backend was handed to another.
    case wrongDevice(op: String, expected: String, got: String)
    /// An OpenCL call failed; `status` is the raw code and `name` its symbolic name.
    case openCL(call: String, status: Int32, name: String, device: String)
    /// An OpenCL program failed to compile; `log` is the complete build log.
    case kernelBuild(file: String, device: String, options: String, log: String)
    /// An allocation did not fit; lower the batch size or the memory budget.
    case outOfMemory(op: String, bytes: Int, device: String)
    /// The op or a variant of it is not implemented on this backend.
    case unsupported(op: String, reason: String)
    /// A file could not be read or written.
    case file(path: String, reason: String)

    public var description: String {
        switch self {
        case .shapeMismatch(let op, let m): return "\(op): shape mismatch: \(m)"
        case .invalidArgument(let op, let m): return "\(op): \(m)"
        case .deviceUnavailable(let d, let r): return "device \(d) is unavailable: \(r)"
        case .wrongDevice(let op, let e, let g): return "\(op): array lives on \(g), expected \(e)"
        case .openCL(let call, let status, let name, let dev): return "OpenCL \(call) failed with \(name) (\(status)) on \(dev)"
        case .kernelBuild(let file, let dev, let opts, let log): return "OpenCL build of \(file) failed on \(dev) with options '\(opts)':\n\(log)"
        case .outOfMemory(let op, let bytes, let dev): return "\(op): out of memory allocating \(bytes) bytes on \(dev); lower the batch size"
        case .unsupported(let op, let r): return "\(op) is unsupported: \(r)"
        case .file(let p, let r): return "\(p): \(r)"
        }
    }
}
