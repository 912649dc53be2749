import Foundation

/// What produced a result, recorded beside it (`results.jsonl`, the C and Python metadata, the
/// report): enough to reproduce a map on another machine, or to say why it differs there.
public struct Provenance: Codable, Sendable, Equatable {
    /// The engine's version.
    public let engine: String
    /// The backend and device (`cpu (oneDNN 2.6.3 avx512_core, OpenBLAS, 2 cores)`, `opencl:0 (NVIDIA H200)`).
    public let device: String
    /// `exact`, `fast`, `tf32` or `3xtf32` (``Precision``): what ran, so `tf32` asked of a backend
    /// without tensor cores is recorded as `exact` (its GEMMs ran fp32; ``algorithms`` says why).
    public let precision: String
    /// The rule the backend picks algorithms by (direct convolutions, the GEMM kernel and where its
    /// tuning came from): no choice depends on timing, so the same rule and inputs give the same bits.
    public let algorithms: String
    /// The host's CPU.
    public let host: String

    public init(engine: String, device: String, precision: String, algorithms: String, host: String) {
        self.engine = engine
        self.device = device
        self.precision = precision
        self.algorithms = algorithms
        self.host = host
    }

    /// The provenance of results computed on `backend` at `precision`.
    public init(backend: any Backend, precision: Precision) {
        let host = HostInfo.current()
        let ran = precision.usesTensorCores && !backend.details.tensorCores ? Precision.exact : precision
        self.init(engine: "xai \(XAIVersion.string)", device: backend.name, precision: ran.rawValue,
                  algorithms: backend.details.algorithms, host: "\(host.cpuModel), \(host.logicalCores) logical cores")
    }

    /// One line for people (the report's header).
    public var summary: String { "\(engine) on \(device); \(precision) precision: \(algorithms); \(host)" }
}
