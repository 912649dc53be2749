import XAICore

/// A value during execution: activations live on the backend's device; small constants (shapes,
/// pads, indices) and not-yet-uploaded weights stay on the host.
public enum Value: @unchecked Sendable {
    case device(DeviceArray)
    case host(Tensor)

    public var shape: Shape {
        switch self {
        case .device(let a): return a.shape
        case .host(let t): return t.shape
        }
    }
}

extension Tensor {
    /// Integer view of a shape-arithmetic tensor (stored as float32; exact below 2^24).
    public var integers: [Int] { scalars.map { Int($0.rounded()) } }
}
