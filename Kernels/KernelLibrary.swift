import Foundation

/// The OpenCL C sources in `Kernels/`, embedded in the binary at build time. Setting
/// `XAI_KERNEL_DIR` reads `<name>.cl` from that folder instead, for kernel work without rebuilding.
public enum KernelLibrary {
    /// Every embedded source by file name (without `.cl`): the one list of kernel files.
    /// Package.swift embeds every `.cl` file of Kernels/, and a test checks that this list names
    /// each of them.
    static let embedded: [String: [UInt8]] = [
        "common": PackageResources.common_cl,
        "gemm": PackageResources.gemm_cl,
        "conv": PackageResources.conv_cl,
        "pool": PackageResources.pool_cl,
        "elementwise": PackageResources.elementwise_cl,
        "reduce": PackageResources.reduce_cl,
        "softmax": PackageResources.softmax_cl,
        "resize": PackageResources.resize_cl,
        "mask": PackageResources.mask_cl,
        "movement": PackageResources.movement_cl,
        "random": PackageResources.random_cl,
        "mma": PackageResources.mma_cl,
    ]

    /// Whether a family is built with `-cl-fp32-correctly-rounded-divide-sqrt`: the device noise,
    /// whose bits must be those of `CounterRandom` on the host.
    public static func needsCorrectlyRoundedDivideSqrt(_ family: String) -> Bool { family == "random" }

    /// Names of the kernel families (one `.cl` file each; `common.cl` is prepended to every one).
    public static var families: [String] { embedded.keys.filter { $0 != "common" }.sorted() }

    /// The source of one family with `common.cl` in front, or `nil` if unknown (or unreadable under
    /// `XAI_KERNEL_DIR`).
    public static func source(_ name: String) -> (text: String, origin: String)? {
        guard name != "common", let family = file(name), let common = file("common") else { return nil }
        return (common.text + "\n" + family.text, family.origin)
    }

    static func file(_ name: String) -> (text: String, origin: String)? {
        if let dir = ProcessInfo.processInfo.environment["XAI_KERNEL_DIR"], !dir.isEmpty {
            let path = (dir as NSString).appendingPathComponent("\(name).cl")
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            return (text, path)
        }
        guard let bytes = embedded[name] else { return nil }
        return (String(decoding: bytes, as: UTF8.self), "Kernels/\(name).cl (embedded)")
    }
}
