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

/// How closely a backend's arithmetic follows the float64 reference. `exact` (the default; also
/// spelled `fp32`) keeps every pass on algorithms whose rounding stays at float32's (direct
/// convolutions: input gradients within about 1e-6 of PyTorch's on VGG16, the same bits every run);
/// `fast` lets forward-only passes (the perturbation batches of occlusion, LIME, KernelSHAP, RISE)
/// use Winograd convolutions: about 15 % faster on the CPU, maps within about 3e-3 of the exact
/// ones; gradient passes stay exact. `tf32` runs every GEMM of every pass (convolutions, fully
/// connected layers, matmuls) on TF32 tensor cores, operands rounded to 11 significant bits, as
/// PyTorch does for cuDNN convolutions by default on Ampere and later; `3xtf32` runs them on the
/// tensor cores with three TF32 products per pair, for fp32-class accuracy. Both need an NVIDIA GPU
/// whose OpenCL takes inline PTX `mma.sync` (sm_80 and later): elsewhere GEMMs run fp32 and the
/// backend's details say so.
public enum Precision: String, Sendable, CaseIterable, Codable {
    case exact, fast, tf32, tf32x3 = "3xtf32"

    /// `exact` (or `fp32`), `fast`, `tf32` or `3xtf32`.
    /// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` (`precision`).
    public init(parsing text: String) throws {
        let t = text.lowercased()
        guard let p = t == "fp32" ? .exact : Precision(rawValue: t) else {
            throw XAIError.invalidArgument(parameter: "precision", value: text, reason: "not one of exact (fp32), fast, tf32, 3xtf32")
        }
        self = p
    }

    /// Whether GEMMs may run on tensor cores (`tf32`, `3xtf32`).
    public var usesTensorCores: Bool { self == .tf32 || self == .tf32x3 }
}
