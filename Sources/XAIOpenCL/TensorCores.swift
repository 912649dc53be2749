import Foundation
import XAICore

/// The arithmetic of an OpenCL backend's GEMMs (every convolution, fully connected layer and
/// matmul): IEEE fp32 on the SIMT kernels, or TF32 tensor cores (`Kernels/mma.cl`) with one
/// term (PyTorch's default for cuDNN convolutions) or three (fp32-class accuracy).
public enum GEMMArithmetic: String, Sendable, CaseIterable {
    case fp32, tf32, tf32x3 = "3xtf32"

    /// The arithmetic a ``XAICore/Precision`` asks for: tensor cores for `tf32` and `3xtf32`, fp32 otherwise.
    public init(_ precision: Precision) {
        switch precision {
        case .exact, .fast: self = .fp32
        case .tf32: self = .tf32
        case .tf32x3: self = .tf32x3
        }
    }

    /// TF32 products summed per operand pair: 1 (`tf32`) or 3 (`3xtf32`); 0 for fp32.
    var terms: Int {
        switch self {
        case .fp32: return 0
        case .tf32: return 1
        case .tf32x3: return 3
        }
    }
}

/// How `gemm_mma` reaches the tensor cores: the `mma.sync` instructions as inline PTX (NVIDIA's
/// OpenCL on sm_80 and later), or the same warp-level operation emulated in local memory on any
/// device (`XAI_MMA=emulate`: for tests, and to see a precision's error where no tensor core is).
public enum TensorCorePath: String, Sendable {
    case ptx, emulated
}

/// Tensor-core GEMMs a backend runs: the arithmetic, the path, and the kernel's fixed tiling
/// (`-D` options of `Kernels/mma.cl`; a work-group of 8 warps computes 128 x 128 of C).
public struct TensorCores: Sendable, Equatable, CustomStringConvertible {
    public let arithmetic: GEMMArithmetic
    public let path: TensorCorePath
    static let warpsM = 2, warpsN = 4, tilesM = 4, tilesN = 4, kSlice = 16
    static let threads = 32 * warpsM * warpsN
    static let blockM = warpsM * tilesM * 16, blockN = warpsN * tilesN * 8

    /// The largest error, relative to the largest product, that the float64 check accepts: TF32
    /// keeps 11 significant bits (a product's rounding is within about 2^-10 of it), 3xTF32 about 21.
    var tolerance: Double { arithmetic == .tf32 ? 1e-2 : 1e-5 }

    var buildOptions: String {
        " -DMMA_PTX=\(path == .ptx ? 1 : 0) -DMMA_TERMS=\(arithmetic.terms) -DMMA_WARPS_M=\(Self.warpsM)"
            + " -DMMA_WARPS_N=\(Self.warpsN) -DMMA_TM=\(Self.tilesM) -DMMA_TN=\(Self.tilesN) -DMMA_BK=\(Self.kSlice)"
    }

    public var description: String {
        let what = arithmetic == .tf32 ? "TF32 (1 term)" : "3xTF32 (3 terms, fp32-class)"
        return "\(what) on tensor cores, " + (path == .ptx ? "mma.sync m16n8k8 through inline PTX"
            : "mma.sync emulated in local memory (XAI_MMA=emulate; no faster than fp32)")
    }

    /// The path a device would take for tensor-core GEMMs before it is probed, or why it has none.
    /// `XAI_MMA=emulate` emulates them anywhere and `XAI_MMA=off` turns them off.
    static func path(for device: OpenCLDeviceInfo, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> Result<TensorCorePath, TensorCoreUnavailable> {
        switch environment["XAI_MMA"]?.lowercased() {
        case "emulate": return .success(.emulated)
        case "off": return .failure(TensorCoreUnavailable(reason: "XAI_MMA=off"))
        default: break
        }
        guard device.isGPU, device.vendor.uppercased().contains("NVIDIA") else {
            return .failure(TensorCoreUnavailable(reason: "tensor cores are reached through NVIDIA's inline PTX, and \(device.name) (\(device.vendor)) is not an NVIDIA GPU"))
        }
        return .success(.ptx)
    }

    /// One line for `xai devices`: what `--precision tf32` would run on `device`. An NVIDIA GPU is
    /// opened and probed (the mma kernel built and checked against float64); others are not.
    public static func summary(for device: OpenCLDeviceInfo) -> String {
        switch path(for: device) {
        case .failure(let why): return "none (\(why.reason)); --precision tf32 and 3xtf32 run fp32"
        case .success(let path):
            let candidate = TensorCores(arithmetic: .tf32, path: path)
            return OpenCLBackend.probe(candidate, index: device.index, gemm: nil).map { "none (\($0)); --precision tf32 and 3xtf32 run fp32" }
                ?? "\(candidate) for --precision tf32 and 3xtf32"
        }
    }
}

/// Why a backend's GEMMs stay on fp32 although tensor cores were asked for.
struct TensorCoreUnavailable: Error {
    let reason: String
}

extension OpenCLBackend {
    /// ``probe(_:)`` on a backend of its own for device `index`: a kernel that faults can leave
    /// its context unusable, and the backend that asked must still run fp32 then.
    static func probe(_ candidate: TensorCores, index: Int, gemm: GEMMConfig?) -> String? {
        do {
            let scratch = try OpenCLBackend(index: index, memoryBudget: 64 << 20, gemm: gemm)
            scratch.tensorCores = candidate
            return scratch.probe(candidate)
        } catch {
            return "the device could not be opened for the probe: \(error)"
        }
    }

    /// Builds `gemm_mma` for `candidate` and checks it against float64 (``GEMMTuner/check(_:)``,
    /// the check every tuned GEMM passes). Returns the reason it cannot be used, or `nil` if it can;
    /// the caller keeps it only then, so a driver that rejects the PTX, or a kernel that computes
    /// something else, leaves the backend on fp32 and says why.
    func probe(_ candidate: TensorCores) -> String? {
        do {
            let error = try GEMMTuner.check(self)
            guard error <= candidate.tolerance else {
                return "the \(candidate.arithmetic.rawValue) kernel's products are off by \(String(format: "%.2g", error)) of float64's (more than \(candidate.tolerance))"
            }
            return nil
        } catch XAIError.kernelBuild(_, _, _, let log) {
            let first = log.split(separator: "\n").first.map(String.init) ?? ""
            return "\(info.name) did not build the mma kernel: \(first.prefix(200))"
        } catch {
            return "the mma kernel failed: \(error)"
        }
    }
}
