import Foundation

/// Every error the engine reports. Cases carry structure (the op, the parameter, the shapes, the
/// node, the file), not sentences, so that frontends can act on them: the CLI spells a parameter as
/// its flag, the C ABI maps ``code`` to its status codes.
///
/// Context is added by wrapping: an error raised while evaluating a graph node is wrapped in
/// ``inNode(node:op:underlying:)``, one found in a file in ``inFile(path:underlying:)``.
public indirect enum XAIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Operand shapes do not fit the op: `expected` says what would fit, `got` lists the operands' shapes.
    case shapeMismatch(op: String, expected: String, got: [Shape])
    /// A parameter is outside its domain. `parameter` is the library's name for it (`steps`,
    /// `window`, `target`), which the command line spells as a flag (`--steps`).
    case invalidArgument(parameter: String, value: String, reason: String)
    /// NaN or infinite values where finite numbers are needed (`what`: the tensor or file).
    case nonFinite(what: String, count: Int)
    /// A size beyond what the engine will allocate, refused before any allocation: `bytes` would be
    /// needed, `limit` is allowed.
    case tooLarge(what: String, bytes: Int, limit: Int)
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
    /// The op, or a variant of it, is not implemented (on this backend, for this model).
    case unsupported(op: String, reason: String)
    /// A file could not be read, written or understood.
    case file(path: String, reason: String)
    /// A caller asked the work to stop (a progress callback returned "cancel").
    case cancelled(operation: String)
    /// An error raised while evaluating graph node `node`, whose op is `op`.
    case inNode(node: String, op: String, underlying: XAIError)
    /// An error found in the file at `path` (a model, an image, a tensor).
    case inFile(path: String, underlying: XAIError)

    /// Stable error classes; the C ABI's status codes are these numbers.
    public enum Code: Int32, Sendable, CaseIterable {
        case invalidArgument = 1
        case file = 2
        case unsupported = 3
        case device = 4
        case outOfMemory = 5
        case cancelled = 6
        case `internal` = 7
    }

    /// The class of the error, for programs (C status codes, exit codes).
    public var code: Code {
        switch self {
        case .shapeMismatch, .invalidArgument, .nonFinite, .wrongDevice: return .invalidArgument
        case .file: return .file
        case .unsupported: return .unsupported
        case .deviceUnavailable, .openCL, .kernelBuild: return .device
        case .outOfMemory, .tooLarge: return .outOfMemory
        case .cancelled: return .cancelled
        case .inNode(_, _, let e): return e.code
        case .inFile(_, let e): return e.code == .invalidArgument ? .file : e.code
        }
    }

    /// The error without its node and file context.
    public var root: XAIError {
        switch self {
        case .inNode(_, _, let e), .inFile(_, let e): return e.root
        default: return self
        }
    }

    /// The graph node the error was raised in, if any.
    public var node: String? {
        switch self {
        case .inNode(let n, _, _): return n
        case .inFile(_, let e): return e.node
        default: return nil
        }
    }

    /// Wraps the error with the node it was raised in, unless it already names a node.
    public func inNode(_ name: String, op: String) -> XAIError {
        node == nil ? .inNode(node: name, op: op, underlying: self) : self
    }

    /// Wraps the error with the file it concerns, unless it already names that file.
    public func inFile(_ path: String) -> XAIError {
        switch self {
        case .file(let p, _) where p == path: return self
        case .inFile(let p, _) where p == path: return self
        default: return .inFile(path: path, underlying: self)
        }
    }

    public var description: String { rendered { $0 } }

    /// The message, with each parameter name written by `spell` (the CLI passes its flag spelling).
    public func rendered(parameter spell: (String) -> String) -> String {
        switch self {
        case .shapeMismatch(let op, let expected, let got):
            return "\(op): shape mismatch: expected \(expected), got \(got.map(\.description).joined(separator: ", "))"
        case .invalidArgument(let p, let v, let reason):
            return v.isEmpty ? "\(spell(p)): \(reason)" : "\(spell(p)) '\(v)': \(reason)"
        case .nonFinite(let what, let count):
            return "\(what): \(count) value\(count == 1 ? " is" : "s are") NaN or infinite"
        case .tooLarge(let what, let bytes, let limit):
            return "\(what) needs \(Self.bytes(bytes)), more than the \(Self.bytes(limit)) allowed"
        case .deviceUnavailable(let d, let r): return "device \(d) is unavailable: \(r)"
        case .wrongDevice(let op, let e, let g): return "\(op): array lives on \(g), expected \(e)"
        case .openCL(let call, let status, let name, let dev): return "OpenCL \(call) failed with \(name) (\(status)) on \(dev)"
        case .kernelBuild(let file, let dev, let opts, let log): return "OpenCL build of \(file) failed on \(dev) with options '\(opts)':\n\(log)"
        case .outOfMemory(let op, let bytes, let dev):
            return "\(op): out of memory allocating \(Self.bytes(bytes)) on \(dev); lower the batch size"
        case .unsupported(let op, let r): return "\(op) is unsupported: \(r)"
        case .file(let p, let r): return "\(p): \(r)"
        case .cancelled(let operation): return "\(operation) was cancelled"
        case .inNode(let n, let op, let e): return "\(e.rendered(parameter: spell)) (node '\(n)', \(op))"
        case .inFile(let p, let e): return "\(p): \(e.rendered(parameter: spell))"
        }
    }

    static func bytes(_ n: Int) -> String {
        if n >= 1 << 30 { return String(format: "%.1f GiB", Double(n) / Double(1 << 30)) }
        if n >= 1 << 20 { return "\((n + (1 << 19)) >> 20) MiB" }
        return "\(n) bytes"
    }
}
