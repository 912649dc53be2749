@_exported import XAICore
import Foundation
import XAICPU
import XAIOpenCL

@_exported import struct XAIOpenCL.OpenCLDeviceInfo
@_exported import class XAIOpenCL.OpenCLBackend
@_exported import enum XAIOpenCL.OpenCLRuntime
@_exported import class XAICPU.CPUBackend
@_exported import struct XAICPU.HostInfo

/// Makes backends for devices; the one place that knows which backend serves which ``Device``.
public enum Backends {
    /// The backend for `device`: OpenBLAS for `.cpu`, OpenCL device `i` (GPUs first) for `.gpu(i)`.
    /// Throws ``XAIError/deviceUnavailable(device:reason:)`` when the device cannot be used.
    public static func make(_ device: Device, memoryBudget: Int? = nil) throws -> any Backend {
        switch device {
        case .cpu: return CPUBackend(memoryBudget: memoryBudget)
        case .gpu(let index): return try OpenCLBackend(index: index, memoryBudget: memoryBudget)
        }
    }
}
@_exported import XAIGraph
@_exported import XAIONNX

/// Loads models by path or zoo name.
public enum Models {
    /// An ONNX file (anything that exists on disk or ends in `.onnx`) or a ``Zoo`` name, with the
    /// load-time rewrites applied unless `optimize` is false.
    public static func load(_ spec: String, optimize: Bool = true) throws -> Graph {
        let isFile = spec.hasSuffix(".onnx") || spec.contains("/") || FileManager.default.fileExists(atPath: spec)
        let graph = isFile ? try ONNXImporter.load(path: spec) : try Zoo.model(spec)
        return optimize ? try graph.optimized() : graph
    }
}
@_exported import XAIMethods
@_exported import XAIImage
