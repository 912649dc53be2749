import COpenCL
import Foundation
import XAICore

/// One OpenCL device as `xai devices` lists it.
public struct OpenCLDeviceInfo: @unchecked Sendable {
    /// Index over every platform, GPUs first: what `--device gpu:N` takes.
    public let index: Int
    public let name, vendor, driverVersion, deviceVersion, platformName: String
    public let isGPU: Bool
    public let computeUnits: Int, clockMHz: Int
    public let globalMemoryBytes: Int, maxAllocationBytes: Int, localMemoryBytes: Int
    /// Work-items one work-group may hold.
    public let maxWorkGroupSize: Int
    /// Whether float32 division and square root can be built correctly rounded
    /// (`CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT`): the device noise needs it to give the bits every
    /// backend gives; without it noise is drawn on the host.
    public let correctlyRoundedDivideSqrt: Bool
    let platform: cl_platform_id
    let device: cl_device_id
}


/// A C string from a byte buffer (up to the first NUL).
func cString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Platform and device discovery.
public enum OpenCLRuntime {
    /// Every device of every platform, GPUs first. Throws ``XAIError/deviceUnavailable(device:reason:)``
    /// when no OpenCL platform is installed.
    public static func devices() throws -> [OpenCLDeviceInfo] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        guard status == CL_SUCCESS || status == CL_PLATFORM_NOT_FOUND_KHR, count > 0 else {
            throw XAIError.deviceUnavailable(device: "gpu", reason: status == CL_PLATFORM_NOT_FOUND_KHR || status == CL_SUCCESS
                ? "no OpenCL platform found (install an OpenCL driver, e.g. pocl-opencl-icd, or a GPU vendor's ICD)"
                : "clGetPlatformIDs failed with \(openCLStatusName(status))")
        }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs", "platforms")
        var gpus: [(cl_platform_id, cl_device_id)] = [], others: [(cl_platform_id, cl_device_id)] = []
        for case let p? in platforms {
            var n: cl_uint = 0
            guard clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n) == CL_SUCCESS, n > 0 else { continue }
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            guard clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil) == CL_SUCCESS else { continue }
            for case let d? in ids {
                var type: cl_device_type = 0
                clGetDeviceInfo(d, cl_device_info(CL_DEVICE_TYPE), MemoryLayout<cl_device_type>.size, &type, nil)
                if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { gpus.append((p, d)) } else { others.append((p, d)) }
            }
        }
        return (gpus + others).enumerated().map { i, pd in describe(index: i, platform: pd.0, device: pd.1) }
    }

    static func describe(index: Int, platform: cl_platform_id, device: cl_device_id) -> OpenCLDeviceInfo {
        func string(_ param: Int32) -> String {
            var size = 0
            clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size)
            var buf = [CChar](repeating: 0, count: max(size, 1))
            clGetDeviceInfo(device, cl_device_info(param), size, &buf, nil)
            return cString(buf).trimmingCharacters(in: .whitespaces)
        }
        func number<T: FixedWidthInteger>(_ param: Int32, _ type: T.Type) -> Int {
            var v: T = 0
            clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &v, nil)
            return Int(v)
        }
        var size = 0
        clGetPlatformInfo(platform, cl_platform_info(CL_PLATFORM_NAME), 0, nil, &size)
        var buf = [CChar](repeating: 0, count: max(size, 1))
        clGetPlatformInfo(platform, cl_platform_info(CL_PLATFORM_NAME), size, &buf, nil)
        var type: cl_device_type = 0
        clGetDeviceInfo(device, cl_device_info(CL_DEVICE_TYPE), MemoryLayout<cl_device_type>.size, &type, nil)
        return OpenCLDeviceInfo(index: index, name: string(CL_DEVICE_NAME), vendor: string(CL_DEVICE_VENDOR),
                                driverVersion: string(CL_DRIVER_VERSION), deviceVersion: string(CL_DEVICE_VERSION),
                                platformName: cString(buf), isGPU: type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0,
                                computeUnits: number(CL_DEVICE_MAX_COMPUTE_UNITS, cl_uint.self),
                                clockMHz: number(CL_DEVICE_MAX_CLOCK_FREQUENCY, cl_uint.self),
                                globalMemoryBytes: number(CL_DEVICE_GLOBAL_MEM_SIZE, cl_ulong.self),
                                maxAllocationBytes: number(CL_DEVICE_MAX_MEM_ALLOC_SIZE, cl_ulong.self),
                                localMemoryBytes: number(CL_DEVICE_LOCAL_MEM_SIZE, cl_ulong.self),
                                maxWorkGroupSize: max(1, number(CL_DEVICE_MAX_WORK_GROUP_SIZE, Int.self)),
                                correctlyRoundedDivideSqrt: number(CL_DEVICE_SINGLE_FP_CONFIG, cl_device_fp_config.self)
                                    & Int(CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT) != 0,
                                platform: platform, device: device)
    }
}

/// Throws ``XAIError/openCL(call:status:name:device:)`` for a failed call.
func check(_ status: cl_int, _ call: String, _ device: String) throws {
    guard status == CL_SUCCESS else {
        throw XAIError.openCL(call: call, status: status, name: openCLStatusName(status), device: device)
    }
}
