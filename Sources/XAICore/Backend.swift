/// Backend-owned memory behind a ``DeviceArray``. Each backend defines its own and refuses the others'.
public protocol DeviceStorage: AnyObject, Sendable {}

/// A dense float32 array resident on a backend's device, in the same row-major/NCHW layout as
/// ``Tensor``. Storage is released (or returned to the backend's pool) when the last reference goes.
public final class DeviceArray: @unchecked Sendable, CustomStringConvertible {
    /// The array's dimensions.
    public let shape: Shape
    /// The backend's memory; read it only through the backend that made it.
    public let storage: any DeviceStorage

    public init(shape: Shape, storage: any DeviceStorage) {
        self.shape = shape
        self.storage = storage
    }

    /// The same memory viewed with another shape of the same element count (no copy).
    public func reshaped(_ newShape: Shape) throws -> DeviceArray {
        guard newShape.count == shape.count else {
            throw XAIError.shapeMismatch(op: "reshape", message: "cannot view \(shape) as \(newShape)")
        }
        return DeviceArray(shape: newShape, storage: storage)
    }

    public var description: String { "DeviceArray\(shape)" }
}

/// The small set of primitives every compute backend provides. Composites (fully connected layers,
/// global pooling, broadcasting backward rules, log-softmax) are written once above it in
/// `Backend+Composites.swift`.
///
/// All primitives take and return contiguous arrays; none mutates its inputs. Backward primitives
/// compute gradients with respect to activations and inputs only, never to weights.
public protocol Backend: AnyObject, Sendable {
    /// The device this backend computes on.
    var device: Device { get }
    /// A human-readable name, e.g. `cpu (OpenBLAS, 2 threads)` or `opencl:0 (NVIDIA H100)`.
    var name: String { get }
    /// Bytes the backend may use for workspaces and batches; methods size their batches from it.
    var memoryBudget: Int { get }

    // MARK: Memory
    func upload(_ tensor: Tensor) throws -> DeviceArray
    func download(_ array: DeviceArray) throws -> Tensor
    /// A new array with every element set to `value`.
    func filled(_ shape: Shape, value: Float) throws -> DeviceArray

    // MARK: Linear algebra
    /// `activation(alpha * op(a) * op(b) + bias)` where op transposes when asked; `a` is `[M, K]`
    /// (or `[K, M]`), `b` is `[K, N]` (or `[N, K]`), `bias` is `[N]` added to every row. Result `[M, N]`.
    func gemm(_ a: DeviceArray, _ b: DeviceArray, transposeA: Bool, transposeB: Bool, alpha: Float,
              bias: DeviceArray?, activation: UnaryOp) throws -> DeviceArray

    // MARK: Convolution
    /// `activation(conv(x, weight) + bias)`; `x` `[N, Cin, H, W]`, `weight` `[Cout, Cin/groups, kH, kW]`, `bias` `[Cout]`.
    func conv2d(_ x: DeviceArray, weight: DeviceArray, bias: DeviceArray?, params: Conv2DParams,
                activation: UnaryOp) throws -> DeviceArray
    /// Gradient of a (bias-free, activation-free) convolution with respect to its input of shape `inputShape`.
    func conv2dBackwardInput(_ gradOutput: DeviceArray, weight: DeviceArray, params: Conv2DParams,
                             inputShape: Shape) throws -> DeviceArray

    // MARK: Pooling
    func pool2d(_ x: DeviceArray, params: Pool2DParams) throws -> DeviceArray
    /// Max pooling sends each output's gradient to the first maximum of its window (PyTorch's choice).
    func pool2dBackward(_ gradOutput: DeviceArray, input: DeviceArray, params: Pool2DParams) throws -> DeviceArray

    // MARK: Elementwise
    func unary(_ op: UnaryOp, _ x: DeviceArray) throws -> DeviceArray
    /// `gradOutput * op'(.)`, evaluated from the op's input, or from its output when
    /// `valueIsOutput` (allowed only where ``UnaryOp/derivativeFromOutput``).
    func unaryBackward(_ op: UnaryOp, gradOutput: DeviceArray, value: DeviceArray, valueIsOutput: Bool) throws -> DeviceArray
    /// Elementwise `a op b` with numpy broadcasting.
    func binary(_ op: BinaryOp, _ a: DeviceArray, _ b: DeviceArray) throws -> DeviceArray

    // MARK: Reductions and normalisation
    /// Reduces over `axes`, keeping them as extent-1 axes.
    func reduce(_ op: ReduceOp, _ x: DeviceArray, axes: [Int]) throws -> DeviceArray
    /// Gradient of ``reduce(_:_:axes:)``: broadcast for sum and mean; for max, shared equally among
    /// the tied maxima of `input` (needed only for max).
    func reduceBackward(_ op: ReduceOp, gradOutput: DeviceArray, input: DeviceArray, axes: [Int]) throws -> DeviceArray
    /// Softmax (or log-softmax) along `axis`.
    func softmax(_ x: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray
    /// Gradient of ``softmax(_:axis:log:)`` given its output.
    func softmaxBackward(_ gradOutput: DeviceArray, output: DeviceArray, axis: Int, log: Bool) throws -> DeviceArray

    // MARK: Resampling
    /// Bilinear resize of the two spatial axes of `[N, C, H, W]` (PyTorch `interpolate` semantics).
    func resizeBilinear(_ x: DeviceArray, height: Int, width: Int, alignCorners: Bool) throws -> DeviceArray
    func resizeBilinearBackward(_ gradOutput: DeviceArray, inputShape: Shape, alignCorners: Bool) throws -> DeviceArray

    // MARK: Perturbation
    /// Expands compact mask descriptions to `[N, 1, height, width]` on the device.
    func masks(_ spec: MaskSpec, height: Int, width: Int) throws -> DeviceArray
    /// `out[n] = image * m[n] + baseline * (1 - m[n])` for `image` and `baseline` `[1, C, H, W]`, the masks
    /// built on the device from `spec`. Result `[N, C, H, W]`.
    func composite(image: DeviceArray, baseline: DeviceArray, masks spec: MaskSpec) throws -> DeviceArray

    // MARK: Data movement
    // Rare in CNNs (Transpose, Concat, Pad, slicing); each has a host default in
    // `Backend+DataMovement.swift` that a backend may replace with a native kernel.

    /// Reorders axes: output axis `i` is input axis `perm[i]`.
    func permute(_ x: DeviceArray, _ perm: [Int]) throws -> DeviceArray
    /// The box `starts[i] ..< starts[i] + sizes[i]` on every axis.
    func slice(_ x: DeviceArray, starts: [Int], sizes: [Int]) throws -> DeviceArray
    /// Constant padding: `before[i]` and `after[i]` elements of `value` around axis `i`.
    func pad(_ x: DeviceArray, before: [Int], after: [Int], value: Float) throws -> DeviceArray
    /// Joins arrays along `axis`; all other extents must match.
    func concat(_ xs: [DeviceArray], axis: Int) throws -> DeviceArray
}
