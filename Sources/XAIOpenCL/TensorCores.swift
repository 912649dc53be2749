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

/// A tensor-core work-group's shape (`-D` options of `Kernels/mma.cl`): `warpsM x warpsN` warps,
/// each computing `tilesM x tilesN` instruction tiles of 16 x 8, through K in slices of 16. Every
/// tiling adds an element's products in the same order (eight k per `mma.sync`, in order), so
/// they all give the same bits: the choice is speed alone.
public struct MMATiling: Sendable, Equatable, CustomStringConvertible {
    let warpsM: Int, warpsN: Int, tilesM: Int, tilesN: Int
    static let kSlice = 16
    var threads: Int { 32 * warpsM * warpsN }
    /// Rows and columns of C a work-group computes (``BlockTile``).
    var blockRows: Int { warpsM * tilesM * 16 }
    var blockColumns: Int { warpsN * tilesN * 8 }

    /// Largest first: 128 x 128 (8 warps of 4 x 4 tiles: the most reuse per load), then 64 x 64 and
    /// 32 x 32 (4 warps of 2 x 4 and of 1 x 2 tiles) for grids too small to fill the device
    /// (``TileChoice``). The implicit kernels' gathers need the threads a multiple of
    /// the block's columns and a slice of B a multiple of the threads (mma.cl checks).
    static let ladder = [MMATiling(warpsM: 2, warpsN: 4, tilesM: 4, tilesN: 4),
                         MMATiling(warpsM: 2, warpsN: 2, tilesM: 2, tilesN: 4),
                         MMATiling(warpsM: 2, warpsN: 2, tilesM: 1, tilesN: 2)]

    var buildOptions: String {
        " -DMMA_WARPS_M=\(warpsM) -DMMA_WARPS_N=\(warpsN) -DMMA_TM=\(tilesM) -DMMA_TN=\(tilesN) -DMMA_BK=\(Self.kSlice)"
    }

    public var description: String { "\(blockRows)x\(blockColumns)" }
}

/// Tensor-core GEMMs a backend runs: the arithmetic and the path (`-D` options of
/// `Kernels/mma.cl`); each launch adds its tiling (``MMATiling``).
public struct TensorCores: Sendable, Equatable, CustomStringConvertible {
    public let arithmetic: GEMMArithmetic
    public let path: TensorCorePath

    /// The largest error, relative to the largest product, that the float64 check accepts: TF32
    /// keeps 11 significant bits (a product's rounding is within about 2^-10 of it), 3xTF32 about 21.
    var tolerance: Double { arithmetic == .tf32 ? 1e-2 : 1e-5 }

    /// The name of this arithmetic's measurements in the tuner's table (``ConvolutionLoweringTable``):
    /// `tf32`, `3xtf32`, with ` emulated` after it where the instructions were emulated, so
    /// emulated timings never steer the real instructions.
    var tableName: String { arithmetic.rawValue + (path == .emulated ? " emulated" : "") }

    func buildOptions(_ tiling: MMATiling) -> String {
        " -DMMA_PTX=\(path == .ptx ? 1 : 0) -DMMA_TERMS=\(arithmetic.terms)" + tiling.buildOptions
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

    /// Builds `gemm_mma` for `candidate` under every tiling (``MMATiling/ladder``) and checks each
    /// against float64 (``GEMMTuner/check(_:)``, the check every tuned GEMM passes). Returns the
    /// reason it cannot be used, or `nil` if it can; the caller keeps it only then, so a driver that
    /// rejects the PTX, or a kernel that computes something else, leaves the backend on fp32 and
    /// says why. Restores ``tileChoice``.
    func probe(_ candidate: TensorCores) -> String? {
        let choice = tileChoice
        defer { tileChoice = choice }
        for (step, tiling) in MMATiling.ladder.enumerated() {
            tileChoice = .fixed(step: step)
            do {
                let error = try GEMMTuner.check(self)
                guard error <= candidate.tolerance else {
                    return "the \(candidate.arithmetic.rawValue) kernel's products (\(tiling) tiles) are off by \(String(format: "%.2g", error)) of float64's (more than \(candidate.tolerance))"
                }
            } catch XAIError.kernelBuild(_, _, _, let log) {
                let first = log.split(separator: "\n").first.map(String.init) ?? ""
                return "\(info.name) did not build the mma kernel (\(tiling) tiles): \(first.prefix(200))"
            } catch {
                return "the mma kernel (\(tiling) tiles) failed: \(error)"
            }
        }
        return nil
    }
}
