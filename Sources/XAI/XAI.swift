@_exported import XAICore
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
