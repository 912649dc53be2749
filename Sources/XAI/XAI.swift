import Foundation
import XAICPU
import XAIOpenCL

/// Makes backends for devices; the one place that knows which backend serves which ``Device``.
public enum Backends {
    /// The backend for `device`: OpenBLAS for `.cpu`, OpenCL device `i` (GPUs first) for `.gpu(i)`.
    /// - Parameter memoryBudget: bytes methods may use for batches (default: the backend's own).
    /// - Throws: ``XAIError/deviceUnavailable(device:reason:)`` when the device cannot be used.
    /// - Parameter precision: `fast` lets forward-only passes use Winograd convolutions (oneDNN's
    ///   on the CPU, F(2x2, 3x3) or F(4x4, 3x3) per layer on OpenCL; ``Precision``); `exact` keeps exact ones (unless
    ///   `XAI_CONV_ALGO` says otherwise on the CPU); `tf32` and `3xtf32` put an OpenCL device's
    ///   GEMMs on tensor cores where it has them (the CPU has none and runs fp32).
    /// - Parameter profileKernels: an OpenCL device records each kernel's device time
    ///   (``ProfilesKernels``); the CPU ignores it.
    public static func make(_ device: Device, memoryBudget: Int? = nil, precision: Precision = .exact, profileKernels: Bool = false) throws -> any Backend {
        switch device {
        case .cpu: return CPUBackend(memoryBudget: memoryBudget, convolutionPolicy: precision == .fast ? .auto : nil)
        case .gpu(let index): return try OpenCLBackend(index: index, memoryBudget: memoryBudget, profileKernels: profileKernels,
                                                       fastConvolutions: precision == .fast, arithmetic: GEMMArithmetic(precision))
        }
    }

    /// The CPU and every OpenCL device (GPUs first) as JSON objects, with the `device` string that
    /// selects each; `openCLError` says why there are no OpenCL devices, where that is so.
    public static func deviceList() -> (devices: [[String: Any]], openCLError: String?) {
        let host = HostInfo.current()
        var list: [[String: Any]] = [["device": "cpu", "name": host.cpuModel, "isGPU": false, "logicalCores": host.logicalCores,
                                      "memoryBytes": host.memoryBytes, "blas": host.blasConfig, "convolutions": host.oneDNN ?? "im2col + OpenBLAS"]]
        do {
            for d in try OpenCLRuntime.devices() {
                let gemm = try? GEMMTuningCache.choose(for: d, requested: nil).0
                list.append(["device": "gpu:\(d.index)", "name": d.name, "vendor": d.vendor, "platform": d.platformName, "isGPU": d.isGPU,
                             "driverVersion": d.driverVersion, "deviceVersion": d.deviceVersion, "computeUnits": d.computeUnits,
                             "clockMHz": d.clockMHz, "memoryBytes": d.globalMemoryBytes, "maxAllocationBytes": d.maxAllocationBytes,
                             "noiseOnDevice": d.correctlyRoundedDivideSqrt,
                             "gemm": gemm?.description ?? "XAI_GEMM_KERNEL is not a GEMM configuration",
                             "convolutions": gemm.flatMap { try? ConvolutionLowering.summary(for: d, gemm: $0) } ?? "unknown (see xai devices)",
                             "tensorCores": TensorCores.summary(for: d)])
            }
            return (list, nil)
        } catch {
            return (list, "\(error)")
        }
    }
}

/// Loads models by path or zoo name.
public enum Models {
    /// Whether `spec` names a file (anything that exists on disk, contains a `/` or ends in `.onnx`)
    /// rather than a ``Zoo`` model.
    public static func isFile(_ spec: String) -> Bool {
        spec.hasSuffix(".onnx") || spec.contains("/") || FileManager.default.fileExists(atPath: spec)
    }

    /// An ONNX file or a ``Zoo`` name, with the load-time rewrites applied unless `optimize` is false.
    /// - Throws: the importer's errors, and a rewrite's, wrapped with the file.
    public static func load(_ spec: String, optimize: Bool = true) throws -> Graph {
        let isFile = isFile(spec)
        do {
            let graph = isFile ? try ONNXImporter.load(path: spec) : try Zoo.model(spec)
            return optimize ? try graph.optimized() : graph
        } catch let e as XAIError where isFile {
            throw e.inFile(spec)
        }
    }

    /// A model from the bytes of an ONNX file (`name` names it in errors), rewritten for inference.
    public static func load(data: Data, name: String, optimize: Bool = true) throws -> Graph {
        do {
            let graph = try ONNXImporter.load(data: data, path: name)
            return optimize ? try graph.optimized() : graph
        } catch let e as XAIError {
            throw e.inFile(name)
        }
    }
}

/// The engine's version, for `xai --version`, the C ABI and Python.
public enum XAIVersion {
    public static let string = "0.21.0"
    /// The C interface's version (`XAI_API_VERSION` in `include/xai.h`).
    public static let api: UInt32 = 3
}
