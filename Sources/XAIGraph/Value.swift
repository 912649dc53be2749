import XAICore

/// A value during execution: activations live on the backend's device; small constants (shapes,
/// pads, indices) and not-yet-uploaded weights stay on the host.
public enum Value: Sendable {
    case device(DeviceArray)
    case host(Tensor)

    public var shape: Shape {
        switch self {
        case .device(let a): return a.shape
        case .host(let t): return t.shape
        }
    }
}
