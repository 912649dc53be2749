/// Where computation runs: the host CPU (OpenBLAS) or an OpenCL device by index.
///
/// OpenCL devices are numbered GPUs first, then every other device, across all platforms;
/// `gpu(0)` is therefore the first GPU when there is one, or PoCL's CPU device otherwise.
public enum Device: Hashable, Sendable, CustomStringConvertible {
    case cpu
    case gpu(Int)

    /// Parses `cpu`, `gpu` (= `gpu:0`) or `gpu:N`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for anything else.
    public init(parsing text: String) throws {
        let t = text.lowercased()
        if t == "cpu" { self = .cpu; return }
        if t == "gpu" || t == "opencl" { self = .gpu(0); return }
        for prefix in ["gpu:", "opencl:"] where t.hasPrefix(prefix) {
            if let i = Int(t.dropFirst(prefix.count)), i >= 0 { self = .gpu(i); return }
        }
        throw XAIError.invalidArgument(parameter: "device", value: text, reason: "not a device; use cpu, gpu or gpu:N")
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .gpu(let i): return "gpu:\(i)"
        }
    }
}

/// How closely a backend's arithmetic follows the float64 reference. `exact` (the default) keeps
/// every pass on algorithms whose rounding stays at float32's (direct convolutions: input
/// gradients within about 1e-6 of PyTorch's on VGG16, the same bits every run); `fast` lets
/// forward-only passes (the perturbation batches of occlusion, LIME, KernelSHAP, RISE) use
/// Winograd convolutions where the CPU offers them: about 15 % faster there, maps within about
/// 3e-3 of the exact ones. Gradient passes stay exact either way.
public enum Precision: String, Sendable, CaseIterable, Codable {
    case exact, fast

    /// `exact` or `fast`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`precision`).
    public init(parsing text: String) throws {
        guard let p = Precision(rawValue: text.lowercased()) else {
            throw XAIError.invalidArgument(parameter: "precision", value: text, reason: "neither exact nor fast")
        }
        self = p
    }
}
