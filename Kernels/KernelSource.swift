import Foundation

/// The OpenCL C sources in `Kernels/`, embedded in the binary at build time. Setting
/// `XAI_KERNEL_DIR` reads `<name>.cl` from that folder instead, for kernel work without rebuilding.
public enum KernelLibrary {
    /// Names of the kernel families (one `.cl` file each).
    public static let families = ["gemm", "conv", "pool", "elementwise", "reduce", "softmax", "resize", "mask"]

    /// The source of one family with `common.cl` in front, or `nil` if unknown (or unreadable under
    /// `XAI_KERNEL_DIR`).
    public static func source(_ name: String) -> (text: String, origin: String)? {
        guard let family = file(name), let common = file("common") else { return nil }
        return (common.text + "\n" + family.text, family.origin)
    }

    static func file(_ name: String) -> (text: String, origin: String)? {
        if let dir = ProcessInfo.processInfo.environment["XAI_KERNEL_DIR"], !dir.isEmpty {
            let path = (dir as NSString).appendingPathComponent("\(name).cl")
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            return (text, path)
        }
        let bytes: [UInt8]
        switch name {
        case "gemm": bytes = PackageResources.gemm_cl
        case "conv": bytes = PackageResources.conv_cl
        case "pool": bytes = PackageResources.pool_cl
        case "elementwise": bytes = PackageResources.elementwise_cl
        case "reduce": bytes = PackageResources.reduce_cl
        case "softmax": bytes = PackageResources.softmax_cl
        case "resize": bytes = PackageResources.resize_cl
        case "mask": bytes = PackageResources.mask_cl
        case "common": bytes = PackageResources.common_cl
        default: return nil
        }
        return (String(decoding: bytes, as: UTF8.self), "Kernels/\(name).cl (embedded)")
    }
}
