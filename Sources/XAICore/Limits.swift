import Foundation

/// Sizes the engine refuses before allocating, so that a file claiming an enormous tensor or
/// picture gets an error naming it instead of the process being killed for memory.
public enum Limits {
    /// The largest float32 tensor read from a file or built from a model's shape arithmetic:
    /// 4 GiB, or `XAI_MAX_TENSOR_BYTES`.
    public static let tensorBytes = environment("XAI_MAX_TENSOR_BYTES") ?? (4 << 30)
    /// The largest picture decoded: 100 megapixels (Pillow refuses about 179), or `XAI_MAX_IMAGE_PIXELS`.
    public static let imagePixels = environment("XAI_MAX_IMAGE_PIXELS") ?? 100_000_000

    static func environment(_ name: String) -> Int? {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil }
    }
}
